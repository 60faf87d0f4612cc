"""Key-value providers against real servers: credentials, TLS, restarts, primitives.

The generic proxy behaviour (routing, confirmation, batching) is covered for
every store by tests/test_proxy.py through ``PROXY_KINDS``; this module covers
what only the key-value stores have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import unittest
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traefik_proxy import core
from traefik_proxy.consul import TraefikConsulProxy
from traefik_proxy.etcd import TraefikEtcdProxy
from traefik_proxy.kv import TKvProxy
from traefik_proxy.redis import TraefikRedisProxy

from .kv_support import consul_traits, etcd_traits, kv_prefixes, redis_traits
from .proxies import PROXY_KINDS, make_proxy, served_by

KV_KINDS = ["etcd", "redis", "consul"]


# ---------------------------------------------------------------- store primitives


@pytest.fixture(scope="module", params=KV_KINDS)
async def store(request, tmp_path_factory):
    """An unstarted proxy of each KV kind: only its store primitives are used."""
    cls, traits = PROXY_KINDS[request.param](request, tmp_path_factory.mktemp("store"))
    proxy = cls(**traits)
    yield proxy
    await proxy._close()


def sub(store: TKvProxy) -> str:
    """A fresh key prefix under the store proxy's Traefik prefix."""
    return f"{store.kv_traefik_prefix}/t{uuid.uuid4().hex[:8]}/"


async def test_set_get_delete_keys(store):
    p = sub(store)
    await store._kv_atomic_set({p + "a": "1", p + "b/c": "two", p + "b/d": "três"})
    assert await store._kv_get_tree(p) == {p + "a": "1", p + "b/c": "two", p + "b/d": "três"}
    await store._kv_atomic_delete(p + "a")
    assert await store._kv_get_tree(p) == {p + "b/c": "two", p + "b/d": "três"}
    await store._kv_atomic_delete(p + "missing", p + "missing/tree/")  # not an error
    assert await store._kv_get_tree(p + "nothing/") == {}


async def test_subtree_delete_spares_siblings_with_common_prefix(store):
    p = sub(store)
    keys = {p + "r/x/rule": "1", p + "r/x/p": "2", p + "r/xy/rule": "3", p + "r/x": "leaf"}
    await store._kv_atomic_set(keys)
    await store._kv_atomic_delete(p + "r/x/")
    assert await store._kv_get_tree(p) == {p + "r/xy/rule": "3", p + "r/x": "leaf"}


async def test_get_tree_is_exactly_the_prefix(store):
    p = sub(store)
    await store._kv_atomic_set({p + "ab": "1", p + "abc": "2", p + "b": "3"})
    assert await store._kv_get_tree(p + "ab") == {p + "ab": "1", p + "abc": "2"}


async def test_changes_larger_than_a_transaction(store):
    """More keys than etcd (128) or Consul (64) take in one transaction."""
    routes = [
        core.make_route(f"/big-{uuid.uuid4().hex[:6]}/user/u{i}/", "http://127.0.0.1:9", {"i": i})
        for i in range(40)
    ]
    ops = [core.Op("add", r.routespec, r) for r in routes]
    settings = store.settings
    changes = core.changes_for(ops, settings)
    assert len(core.kv_keys(changes, store.kv_layout)[0]) > 128
    await store._apply_changes(changes)
    records = await store._get_jupyterhub_dynamic_config()
    for r in routes:
        name = core.route_name(r.routespec, settings.namespace)
        assert core.decode_route(records[name]) == r
    config = await store._get_traefik_dynamic_config()
    for r in routes:
        name = core.route_name(r.routespec, settings.namespace)
        assert config["http"]["routers"][name]["rule"] == core.traefik_rule(r.routespec)
    # and delete them all in one batch
    deletes = [core.Op("delete", r.routespec) for r in routes]
    await store._apply_changes(core.changes_for(deletes, settings))
    records = await store._get_jupyterhub_dynamic_config()
    config = await store._get_traefik_dynamic_config()
    for r in routes:
        name = core.route_name(r.routespec, settings.namespace)
        assert name not in records
        assert name not in config.get("http", {}).get("routers", {})
        assert name not in config.get("http", {}).get("services", {})


async def test_route_records_keep_json_types(store):
    route = core.make_route(
        f"/json-{uuid.uuid4().hex[:6]}/",
        "http://127.0.0.1:9",
        {"n": 3, "f": 1.5, "b": True, "l": [1, 2, "x"], "none": None, "s": "3", "nested": {"a": [True]}},
    )
    changes = core.changes_for([core.Op("add", route.routespec, route)], store.settings)
    await store._apply_changes(changes)
    name = core.route_name(route.routespec, store.traefik_namespace)
    raw = await store._get_route_record(name)
    assert core.decode_route(raw).data == route.data
    # the record is a JSON string under {jupyterhub prefix}/routes/{name}
    tree = await store._kv_get_tree(f"{store.kv_jupyterhub_prefix}/routes/{name}")
    assert tree == {f"{store.kv_jupyterhub_prefix}/routes/{name}": raw}


async def test_stores_sharing_a_server_are_separate(store, tmp_path):
    other = type(store)(**{**_store_traits(store), **kv_prefixes()})
    try:
        route = core.make_route(f"/sep-{uuid.uuid4().hex[:6]}/", "http://127.0.0.1:9", {})
        await store._apply_changes(core.changes_for([core.Op("add", route.routespec, route)], store.settings))
        name = core.route_name(route.routespec, store.traefik_namespace)
        assert name in await store._get_jupyterhub_dynamic_config()
        assert name not in await other._get_jupyterhub_dynamic_config()
        assert await other._get_traefik_dynamic_config() == {}
    finally:
        await other._close()


def _store_traits(store: TKvProxy) -> dict:
    names = {
        TraefikEtcdProxy: ["etcd_url", "etcd_username", "etcd_password", "etcd_client_kwargs"],
        TraefikRedisProxy: ["redis_url", "redis_username", "redis_password", "redis_client_kwargs"],
        TraefikConsulProxy: ["consul_url", "consul_password", "consul_client_kwargs"],
    }[type(store)]
    return {n: getattr(store, n) for n in names}


# A nested config as Traefik's dynamic config is: dicts of (lists of) leaves.
_key = st.text(st.sampled_from("abcxyz09-_.@é"), min_size=1, max_size=6)
_leaf = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20),
)
_tree = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3),
        st.dictionaries(_key, children, min_size=1, max_size=4),
    ),
    max_leaves=25,
)
_config = st.dictionaries(_key, _tree, min_size=1, max_size=4)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=_config)
async def test_flatten_set_get_unflatten_roundtrip(store, config):
    """flatten → _kv_atomic_set → _kv_get_tree → unflatten gives the config back."""
    prefix = sub(store)
    flat = core.flatten(config, "/", prefix.rstrip("/"))
    await store._kv_atomic_set(flat)
    tree = await store._kv_get_tree(prefix)
    assert tree == flat
    back = core.unflatten({k[len(prefix) :]: v for k, v in tree.items()})
    assert back == core.unflatten(core.flatten(config))
    await store._kv_atomic_delete(prefix)
    assert await store._kv_get_tree(prefix) == {}


# ---------------------------------------------------------------- credentials and TLS


async def _start_and_route(proxy, backends, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await proxy.start()
    try:
        await proxy.add_route("/secure/", backends["a"].url, {"user": "alice"})
        assert await served_by(proxy, "/secure/x") == "a"
        assert (await proxy.get_all_routes())["/secure/"]["data"] == {"user": "alice"}
        mode = stat.S_IMODE(os.stat(proxy.static_config_file).st_mode)
        assert mode == 0o600, oct(mode)
        await proxy.delete_route("/secure/")
        assert await proxy.get_route("/secure/") is None
    finally:
        await proxy.stop()


def _assert_not_logged(caplog, *secrets: str) -> None:
    for secret in secrets:
        assert secret
        assert secret not in caplog.text


async def test_etcd_with_password(etcd_auth_server, backends, tmp_path, caplog, request):
    server = etcd_auth_server
    proxy = make_proxy("etcd", request, tmp_path, **etcd_traits(server), **kv_prefixes())
    assert proxy.etcd_password == server.password
    await _start_and_route(proxy, backends, caplog)
    _assert_not_logged(caplog, server.password)


async def test_etcd_wrong_password_fails_clearly(etcd_auth_server):
    proxy = TraefikEtcdProxy(
        etcd_url=etcd_auth_server.url, etcd_username="root", etcd_password="wrong", **kv_prefixes()
    )
    with pytest.raises(Exception, match="authentication failed|invalid|password"):
        await proxy._kv_get_tree("x")
    await proxy._close()


async def test_etcd_over_tls_with_client_certificate(etcd_tls_server, backends, tmp_path, caplog, request):
    server = etcd_tls_server
    assert server.url.startswith("https://")
    proxy = make_proxy("etcd", request, tmp_path, **etcd_traits(server), **kv_prefixes())
    static = proxy._generate_traefik_static_config()["providers"]["etcd"]
    assert static["tls"] == {
        "ca": server.client_kwargs["ca_cert"],
        "cert": server.client_kwargs["cert_cert"],
        "key": server.client_kwargs["cert_key"],
    }
    await _start_and_route(proxy, backends, caplog)


def test_etcd_https_without_ca_is_refused():
    proxy = TraefikEtcdProxy(etcd_url="https://127.0.0.1:2379")
    with pytest.raises(ValueError, match="ca_cert"):
        proxy._make_store()


async def test_redis_with_acl_user(redis_auth_server, backends, tmp_path, caplog, request):
    server = redis_auth_server
    proxy = make_proxy("redis", request, tmp_path, **redis_traits(server), **kv_prefixes())
    static = proxy._generate_traefik_static_config()["providers"]["redis"]
    assert (static["username"], static["password"]) == (server.username, server.password)
    await _start_and_route(proxy, backends, caplog)
    _assert_not_logged(caplog, server.password)


async def test_redis_without_password_is_refused(redis_auth_server):
    proxy = TraefikRedisProxy(redis_url=redis_auth_server.url, redis_retries=0, **kv_prefixes())
    with pytest.raises(Exception, match="(?i)auth|NOPERM|denied"):
        await proxy._kv_get_tree("x")
    await proxy._close()


async def test_redis_database_from_url(redis_server):
    proxy = TraefikRedisProxy(redis_url=redis_server.url + "/3", **kv_prefixes())
    try:
        assert proxy._generate_traefik_static_config()["providers"]["redis"]["db"] == 3
        await proxy._kv_atomic_set({f"{proxy.kv_traefik_prefix}/k": "v"})
        assert (
            await proxy.kv_store.client.execute_command("CLIENT", "INFO")
            and (await proxy.kv_store.client.get(f"{proxy.kv_traefik_prefix}/k")) == "v"
        )
        db0 = TraefikRedisProxy(
            redis_url=redis_server.url,
            kv_traefik_prefix=proxy.kv_traefik_prefix,
            kv_jupyterhub_prefix=proxy.kv_jupyterhub_prefix,
        )
        assert await db0._kv_get_tree(proxy.kv_traefik_prefix + "/") == {}
        await db0._close()
    finally:
        await proxy._close()


async def test_consul_with_token(consul_token_server, backends, tmp_path, caplog, request):
    server = consul_token_server
    proxy = make_proxy("consul", request, tmp_path, **consul_traits(server), **kv_prefixes())
    assert proxy._generate_traefik_static_config()["providers"]["consul"]["token"] == server.password
    await _start_and_route(proxy, backends, caplog)
    _assert_not_logged(caplog, server.password)
    anonymous = TraefikConsulProxy(consul_url=server.url, **kv_prefixes())
    with pytest.raises(RuntimeError, match="Permission denied|403"):
        await anonymous._kv_atomic_set({f"{anonymous.kv_traefik_prefix}/k": "v"})
    await anonymous._close()


# ---------------------------------------------------------------- Hub restart


@pytest.mark.parametrize("kind", KV_KINDS)
async def test_hub_restart_keeps_routes_and_traffic(kind, backends, tmp_path, request):
    """A new proxy object over the same store finds every route; Traefik keeps serving."""
    first = make_proxy(kind, request, tmp_path / "first")
    await first.start()
    try:
        routes = {f"/restart/u{i}/": {"i": i, "ok": i % 2 == 0} for i in range(6)}
        await asyncio.gather(*(first.add_route(r, backends["a"].url, d) for r, d in routes.items()))
        # the Hub goes away without stopping traefik
        await first._close()
        assert await served_by(first, "/restart/u3/x") == "a"
        traits = {
            n: getattr(first, n)
            for n in ("kv_traefik_prefix", "kv_jupyterhub_prefix", "public_url", "traefik_api_url")
        }
        second = make_proxy(
            kind,
            request,
            tmp_path / "second",
            **{**_store_traits(first), **traits},
            should_start=False,
            traefik_api_password=first.traefik_api_password,
        )
        try:
            found = await second.get_all_routes()
            assert {r: v["data"] for r, v in found.items()} == routes
            assert await served_by(first, "/restart/u3/x") == "a"
            await second.add_route("/restart/u3/", backends["b"].url, {"moved": True})
            assert await served_by(first, "/restart/u3/x") == "b"
            await second.delete_route("/restart/u0/")
            assert "/restart/u0/" not in await second.get_all_routes()
        finally:
            await second._close()
    finally:
        await first.stop()


async def test_etcd_logs_in_again_when_its_token_expires(etcd_auth_server):
    server = etcd_auth_server
    proxy = TraefikEtcdProxy(**etcd_traits(server), **kv_prefixes())
    try:
        key = f"{proxy.kv_traefik_prefix}/k"
        await proxy._kv_atomic_set({key: "v"})
        # what etcd answers once it dropped an idle token (--auth-token-ttl)
        proxy.kv_store._client.metadata = (("token", "expired.token"),)
        assert await proxy._kv_get_tree(key) == {key: "v"}
    finally:
        await proxy._close()


def test_entry_points():
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="jupyterhub.proxies")}
    # a missing entry point is a missing feature (JupyterHub could not find the
    # proxy by name): fail, with the likely cause
    missing = {"traefik_etcd", "traefik_redis", "traefik_consul"} - set(found)
    assert not missing, (
        f"entry points {sorted(missing)} not installed; if the package metadata predates "
        "them, reinstall with pip install -e ."
    )
    assert found["traefik_etcd"].load() is TraefikEtcdProxy
    assert found["traefik_redis"].load() is TraefikRedisProxy
    assert found["traefik_consul"].load() is TraefikConsulProxy


@pytest.mark.parametrize("ci", [False, True])
def test_missing_server_skips_locally_and_fails_in_ci(ci, monkeypatch, tmp_path):
    """`make test` installs every server under CI=true: one missing there is a
    failed install, which must fail the run rather than skip the store's tests."""
    from . import servers

    monkeypatch.setattr(servers, "IN_CI", ci)
    monkeypatch.setattr(servers, "etcd_binary", lambda: None)
    expected = servers.MissingServerInCI if ci else servers.MissingServer
    with pytest.raises(expected, match="etcd binary not found") as info:
        servers.start_etcd(tmp_path)
    # pytest reports a unittest.SkipTest as a skip, anything else as an error
    assert isinstance(info.value, unittest.SkipTest) is not ci
