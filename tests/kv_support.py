"""Key-value backends for the tests: proxy kinds "etcd", "redis", "consul".

The traits that point a proxy at a test store (its URL, login, TLS), and a
proxy kind per store for ``PROXY_KINDS`` in :mod:`tests.proxies`. A kind takes
its server from the session fixtures of :mod:`tests.server_fixtures`. Each
proxy gets its own random key prefixes, so several proxies share one server
without seeing each other's keys.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .servers import KVServer, consul_binary


def kv_prefixes() -> dict[str, str]:
    """Fresh, equally long prefixes: none is a string prefix of another."""
    tag = uuid.uuid4().hex[:16]
    return {"kv_traefik_prefix": f"traefik-{tag}", "kv_jupyterhub_prefix": f"jupyterhub-{tag}"}


def etcd_traits(server: KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"etcd_url": server.url}
    if server.username:
        traits.update(etcd_username=server.username, etcd_password=server.password)
    if server.client_kwargs:
        traits["etcd_client_kwargs"] = dict(server.client_kwargs)
    return traits


def redis_traits(server: KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"redis_url": server.url}
    if server.username:
        traits.update(redis_username=server.username, redis_password=server.password)
    return traits


def consul_traits(server: KVServer) -> dict[str, Any]:
    traits: dict[str, Any] = {"consul_url": server.url}
    if server.password:
        traits["consul_password"] = server.password
    return traits


def _kv_kind(module: str, class_name: str, fixture: str, traits: Callable[[KVServer], dict[str, Any]]):
    def configure(request: pytest.FixtureRequest, directory: Path):
        # imported here: a store's client library is only needed by its tests
        proxy_class = getattr(importlib.import_module(module), class_name)
        return proxy_class, {**traits(request.getfixturevalue(fixture)), **kv_prefixes()}

    return configure


#: kind -> function(request, directory) -> (proxy class, its traitlets)
KV_KINDS = {
    "etcd": _kv_kind("traefik_proxy.etcd", "TraefikEtcdProxy", "etcd_server", etcd_traits),
    "redis": _kv_kind("traefik_proxy.redis", "TraefikRedisProxy", "redis_server", redis_traits),
    "consul": _kv_kind("traefik_proxy.consul", "TraefikConsulProxy", "consul_server", consul_traits),
}


def kind_id(kind: str) -> str:
    """A backend kind as test IDs show it: ``consul-standin`` when the Consul
    tests run against :mod:`tests.consul_standin` (no consul binary on PATH)."""
    if kind == "consul" and consul_binary() is None:
        return "consul-standin"
    return kind
