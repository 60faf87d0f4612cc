"""Key-value backends for the generic proxy tests: kinds "etcd", "redis", "consul".

Imported by tests/conftest.py. It registers a proxy kind per store in
``PROXY_KINDS`` and makes the server fixtures of :mod:`tests.servers`
available to every test module. Each proxy gets its own random key prefixes,
so several proxies share one server without seeing each other's keys.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from . import servers
from .conftest import PROXY_KINDS

# pytest finds fixtures in a conftest's namespace; conftest only imports this
# module, so put the server fixtures there (conftest is mid-import here).
_conftest = sys.modules[__name__.rsplit(".", 1)[0] + ".conftest"]
for _fixture in servers.FIXTURES:
    setattr(_conftest, _fixture.__name__, _fixture)


def kv_prefixes() -> dict[str, str]:
    """Fresh, equally long prefixes: none is a string prefix of another."""
    tag = uuid.uuid4().hex[:16]
    return {"kv_traefik_prefix": f"traefik-{tag}", "kv_jupyterhub_prefix": f"jupyterhub-{tag}"}


def etcd_traits(server: servers.KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"etcd_url": server.url}
    if server.username:
        traits.update(etcd_username=server.username, etcd_password=server.password)
    if server.client_kwargs:
        traits["etcd_client_kwargs"] = dict(server.client_kwargs)
    return traits


def redis_traits(server: servers.KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"redis_url": server.url}
    if server.username:
        traits.update(redis_username=server.username, redis_password=server.password)
    return traits


def consul_traits(server: servers.KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"consul_url": server.url}
    if server.password:
        traits["consul_password"] = server.password
    return traits


def _etcd_kind(request: pytest.FixtureRequest, directory: Path):
    from traefik_proxy.etcd import TraefikEtcdProxy

    server = request.getfixturevalue("etcd_server")
    return TraefikEtcdProxy, {**etcd_traits(server), **kv_prefixes()}


def _redis_kind(request: pytest.FixtureRequest, directory: Path):
    from traefik_proxy.redis import TraefikRedisProxy

    server = request.getfixturevalue("redis_server")
    return TraefikRedisProxy, {**redis_traits(server), **kv_prefixes()}


def _consul_kind(request: pytest.FixtureRequest, directory: Path):
    from traefik_proxy.consul import TraefikConsulProxy

    server = request.getfixturevalue("consul_server")
    return TraefikConsulProxy, {**consul_traits(server), **kv_prefixes()}


PROXY_KINDS["etcd"] = _etcd_kind
PROXY_KINDS["redis"] = _redis_kind
PROXY_KINDS["consul"] = _consul_kind
