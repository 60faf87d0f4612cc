"""Fixtures: real traefik processes (one per module and backend), real backends.

``proxy`` is parametrized over every backend kind in ``PROXY_KINDS``; a test
using it runs once per backend against one shared, started proxy, and keeps
out of its neighbours' way by using its own routespec prefix (``prefix``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from traefik_proxy.fileprovider import TraefikFileProviderProxy

from .utils import Backend, free_port

# kind -> function(request, directory) -> (proxy class, extra traitlets).
# Key-value kinds register themselves here (see tests/kv_support.py).
ProxyKind = Callable[[pytest.FixtureRequest, Path], tuple[type, dict[str, Any]]]
PROXY_KINDS: dict[str, ProxyKind] = {}


def _file_kind(suffix: str) -> ProxyKind:
    def configure(request, directory):
        return TraefikFileProviderProxy, {"dynamic_config_file": str(directory / f"rules.{suffix}")}

    return configure


PROXY_KINDS["file"] = _file_kind("toml")

try:  # key-value backends, when their support module is present
    from . import kv_support  # noqa: F401  (registers kinds in PROXY_KINDS)
except ImportError as e:  # pragma: no cover - only while kv support is absent
    if "kv_support" not in str(e):
        raise


def proxy_kwargs(directory: Path, **overrides: Any) -> dict[str, Any]:
    """Traitlets every test proxy gets: its own ports and files in ``directory``."""
    kwargs: dict[str, Any] = {
        "public_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_url": f"http://localhost:{free_port()}",
        "static_config_file": str(directory / "traefik.toml"),
        "traefik_pid_file": str(directory / "traefik.pid"),
        "check_route_timeout": 20,
        "traefik_log_level": "ERROR",
    }
    kwargs.update(overrides)
    return kwargs


def make_proxy(kind: str, request: pytest.FixtureRequest, directory: Path, **overrides: Any):
    """An unstarted proxy of a backend kind, configured to run in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cls, kind_kwargs = PROXY_KINDS[kind](request, directory)
    proxy = cls(**proxy_kwargs(directory, **{**kind_kwargs, **overrides}))
    proxy.log = logging.getLogger(f"traefik_proxy.test.{kind}")
    return proxy


@pytest.fixture(scope="module", params=sorted(PROXY_KINDS))
async def proxy(request, tmp_path_factory):
    """A started proxy (real traefik) of each backend kind, shared by a module."""
    directory = tmp_path_factory.mktemp(f"proxy-{request.param}")
    p = make_proxy(request.param, request, directory)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture(scope="module")
async def backends():
    """Three real HTTP/websocket servers: ``a``, ``b`` and ``hub``."""
    servers = {name: await Backend(name).start() for name in ("a", "b", "hub")}
    yield servers
    for server in servers.values():
        await server.stop()


@pytest.fixture
def prefix() -> str:
    """A routespec prefix no other test uses, so tests can share one proxy."""
    return f"/t-{uuid.uuid4().hex[:10]}/"


@pytest.fixture(autouse=True, scope="session")
def _no_proxy_env():
    # httpx honours HTTP(S)_PROXY; requests to 127.0.0.1 must go direct
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)
