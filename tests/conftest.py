"""Fixtures: real traefik processes (one per module and backend), real backends.

``proxy`` is parametrized over every backend kind in ``PROXY_KINDS``; a test
using it runs once per backend against one shared, started proxy, and keeps
out of its neighbours' way by using its own routespec prefix (``prefix``).
The store servers' fixtures come from the plugin :mod:`tests.server_fixtures`.
"""

from __future__ import annotations

import os
import uuid

import pytest

from .kv_support import kind_id
from .proxies import PROXY_KINDS, make_proxy
from .servers import consul_binary
from .utils import Backend

pytest_plugins = ["tests.server_fixtures"]


def pytest_report_header(config):
    if consul_binary() is None:
        return "consul: in-process stand-in (tests/consul_standin.py); no consul binary on PATH"
    return f"consul: real consul agent -dev ({consul_binary()})"


def pytest_make_parametrize_id(config, val, argname):
    # every parametrized backend kind ("kind", the proxy and store fixtures):
    # a run against the Consul stand-in says so in each test ID
    if val == "consul":
        return kind_id(val)
    return None


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
