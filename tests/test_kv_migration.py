"""Switching a key-value store over from jupyterhub-traefik-proxy (issue 11).

The stores hold exactly what jupyterhub-traefik-proxy 2.1.0 writes: the
layouts of tests/legacy_layouts.py, written the way that project writes them,
into real etcd and valkey and the Consul stand-in. Our proxy starts on the
same store and prefixes (random per test, as the writers allow), and real
traefik routes the requests: the old routers never serve beside ours.
Also here: the old store settings (``kv_url``, ``kv_username``,
``kv_password``) reach the store they name.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from traitlets.config import Config

from traefik_proxy import core
from traefik_proxy.consul import TraefikConsulProxy
from traefik_proxy.etcd import TraefikEtcdProxy

from .kv_support import consul_traits, etcd_traits, kv_prefixes
from .legacy_layouts import (
    LEGACY_API_PASSWORD,
    LEGACY_API_USER,
    LEGACY_ROUTES,
    legacy_kv_writes,
    write_legacy_store,
)
from .proxies import make_proxy, proxy_kwargs, served_by
from .servers import start_traefik, stop_process
from .test_legacy_layouts import RawStore, _old_names, backend_of
from .utils import Backend, wait_for

KINDS = ["etcd", "redis", "consul"]

#: what taking over everything of tests/legacy_layouts.py says, one line per kind
WHOLE_TAKEOVER = [
    "migrated 4 routes",
    "removed its 4 route records",
    "removed its 5 routers",
    "removed its 4 services",
    "removed its 1 middleware",
]


def takeover_lines(caplog) -> list[str]:
    """The takeover's log lines, each without its routespecs and names."""
    return [
        r.getMessage().split(": ")[1]
        for r in caplog.records
        if r.getMessage().startswith("Taking over from jupyterhub-traefik-proxy")
    ]


def old_layout_in(server, targets: dict[str, str]) -> tuple[str, str]:
    """The 2.1.0 layout written into ``server`` under fresh prefixes."""
    prefixes = kv_prefixes()
    tp, jp = prefixes["kv_traefik_prefix"], prefixes["kv_jupyterhub_prefix"]
    write_legacy_store(server, legacy_kv_writes(targets, tp, jp))
    return tp, jp


async def no_old_routers(proxy) -> bool:
    return not _old_names(await proxy._api.list_routers())


@pytest.mark.parametrize("kind", KINDS)
async def test_proxy_takes_over_the_store_of_a_killed_old_hub(kind, request, tmp_path, caplog):
    """The store holds exactly what jupyterhub-traefik-proxy 2.1.0 leaves when
    its Hub is killed (its setup and four routes): our proxy starts on the
    same prefixes, the old records are its routes with their data as stored
    (the old project stored every value as a string), the old routers,
    services and API login are gone, and a new target for an old route serves."""
    server = request.getfixturevalue(f"{kind}_server")
    old, new, hub = [await Backend(name).start() for name in ("old", "new", "hub")]
    tp, jp = old_layout_in(server, {"/user/alice/": old.url, "/": hub.url})
    proxy = make_proxy(kind, request, tmp_path, kv_traefik_prefix=tp, kv_jupyterhub_prefix=jp)
    caplog.set_level(logging.INFO, logger=proxy.log.name)
    await proxy.start()
    try:
        assert await backend_of(proxy.public_url, "/hub/home") == "hub"
        await proxy.add_route("/user/alice/", new.url, {"user": "alice"})
        assert await backend_of(proxy.public_url, "/user/alice/lab") == "new"
        # the store's deletes may reach Traefik after start (Redis: key by key)
        await wait_for(lambda: no_old_routers(proxy), timeout=20)
        routes = await proxy.get_all_routes()
        assert set(routes) == {routespec for routespec, _, _ in LEGACY_ROUTES}
        assert routes["/"] == {"routespec": "/", "target": hub.url, "data": {"hub": "true"}}
        assert routes["/user/alice/"]["target"] == new.url
        assert routes["hub.example.org/user/bob/"]["data"]["user"] == "bob"
        assert routes["hub.example.org/user/bob/"]["data"]["n"] == "3"  # as the old Hub stored it

        async with httpx.AsyncClient(auth=(LEGACY_API_USER, LEGACY_API_PASSWORD)) as client:
            old_login = await client.get(proxy.traefik_api_url.rstrip("/") + "/api/overview")
            assert old_login.status_code == 401
        assert takeover_lines(caplog) == WHOLE_TAKEOVER
        left = RawStore(server).read(tp + "/") | RawStore(server).read(jp + "/")
        assert core.plan_kv_migration(left, traefik_prefix=tp, jupyterhub_prefix=jp).is_empty()
        assert not [k for k in left if "router__" in k or "service__" in k or "route_api" in k]
    finally:
        await proxy.stop()
        for backend in (old, new, hub):
            await backend.stop()
        RawStore(server).delete_trees([tp + "/", jp + "/"])


async def test_an_external_traefik_is_taken_over_on_first_use(request, tmp_path, caplog):
    """With should_start=False the operator's traefik already runs on the old
    store; the takeover happens at the Hub's first call, before its first write."""
    server = request.getfixturevalue("redis_server")
    old, new = await Backend("old").start(), await Backend("new").start()
    tp, jp = old_layout_in(server, {"/user/alice/": old.url})
    proxy = make_proxy(
        "redis",
        request,
        tmp_path,
        should_start=False,
        traefik_api_password="external",
        kv_traefik_prefix=tp,
        kv_jupyterhub_prefix=jp,
    )
    caplog.set_level(logging.INFO, logger=proxy.log.name)
    process = start_traefik(proxy)
    try:
        await proxy.add_route("/user/alice/", new.url, {"user": "alice"})
        assert await backend_of(proxy.public_url, "/user/alice/lab") == "new"
        await wait_for(lambda: no_old_routers(proxy), timeout=20)
        assert takeover_lines(caplog) == WHOLE_TAKEOVER
        assert len(await proxy.get_all_routes()) == len(LEGACY_ROUTES)
    finally:
        await proxy._close()
        stop_process(process)
        await old.stop()
        await new.stop()
        RawStore(server).delete_trees([tp + "/", jp + "/"])


class DeleteFaultInjected(RuntimeError):
    """Raised by a store delete replaced for the test: the Hub dies right there."""


async def test_a_takeover_cut_short_is_finished_by_the_next_start(request, tmp_path, caplog, backends):
    """A Hub that dies after writing the old routes our way but before deleting
    the old keys leaves both; the next start keeps our records and removes the
    rest, and the start after that has nothing to take over."""
    server = request.getfixturevalue("etcd_server")
    tp, jp = old_layout_in(server, {"/user/alice/": backends["a"].url, "/": backends["hub"].url})
    prefixes = {"kv_traefik_prefix": tp, "kv_jupyterhub_prefix": jp}
    first = make_proxy("etcd", request, tmp_path / "first", **prefixes)

    async def delete_fault_injected(keys):
        raise DeleteFaultInjected("the Hub died here")

    first.kv_store.delete = delete_fault_injected
    with pytest.raises(DeleteFaultInjected):
        await first.start()
    await first.stop()
    left = RawStore(server).read(tp + "/") | RawStore(server).read(jp + "/")
    cut_short = core.plan_kv_migration(left, traefik_prefix=tp, jupyterhub_prefix=jp)
    assert (len(cut_short.superseded), cut_short.routes, len(cut_short.routers)) == (4, (), 5)

    caplog.set_level(logging.INFO, logger="traefik_proxy.test.etcd")
    caplog.clear()
    second = make_proxy("etcd", request, tmp_path / "second", **prefixes)
    await second.start()
    try:
        kept = "kept this proxy's own record, not the old one, for 4 routespecs"
        assert takeover_lines(caplog) == [kept, *WHOLE_TAKEOVER[1:]]
        assert await served_by(second, "/user/alice/lab") == "a"
        assert await served_by(second, "/hub/home") == "hub"
        assert not _old_names(await second._api.list_routers())
    finally:
        await second.stop()

    caplog.clear()
    third = make_proxy("etcd", request, tmp_path / "third", **prefixes)
    await third.start()
    try:
        assert takeover_lines(caplog) == []
        assert await served_by(third, "/user/alice/lab") == "a"
        assert len(await third.get_all_routes()) == len(LEGACY_ROUTES)
    finally:
        await third.stop()
        RawStore(server).delete_trees([tp + "/", jp + "/"])


async def test_old_records_that_make_no_route_are_removed_with_one_warning(request, tmp_path, caplog):
    server = request.getfixturevalue("consul_server")
    tp, jp = old_layout_in(server, {})
    broken = core.legacy_alias("/broken/", "router")
    service = core.legacy_alias("/broken/", "service")
    write_legacy_store(
        server,
        [
            {
                f"{tp}/http/routers/{broken}/rule": core.legacy_rule("/broken/"),
                f"{tp}/http/routers/{broken}/service": service,
                f"{tp}/http/routers/{broken}/entryPoints/0": "http",
                f"{tp}/http/services/{service}/loadBalancer/servers/0/url": "not-a-url",
                f"{jp}/routes/{broken}/routespec": "/broken/",
                f"{jp}/routes/{broken}/target": "not-a-url",
                f"{jp}/routes/{broken}/router": broken,
                f"{jp}/routes/{broken}/service": service,
            }
        ],
    )
    proxy = make_proxy("consul", request, tmp_path, kv_traefik_prefix=tp, kv_jupyterhub_prefix=jp)
    caplog.set_level(logging.INFO, logger=proxy.log.name)
    await proxy.start()
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        [warning] = [w for w in warnings if w.startswith("Taking over")]
        assert broken in warning and "1 route record" in warning
        assert sorted(await proxy.get_all_routes()) == sorted(r for r, _, _ in LEGACY_ROUTES)
        assert not _old_names(await proxy._api.list_routers())
        # the 5 routers of the old layout and the broken record's
        assert "removed its 6 routers" in takeover_lines(caplog)
    finally:
        await proxy.stop()
        RawStore(server).delete_trees([tp + "/", jp + "/"])


async def test_a_hub_with_6000_routes_in_etcd_starts(request, tmp_path, backends):
    """At every start the proxy looks for the old layout. Reading both prefixes
    whole, it could not start with 6,000 routes in etcd: the answer (4.4 MB)
    is over the etcd client's 4 MiB limit. It reads only where the old
    project's names can be, and the rest only when something is there."""
    server = request.getfixturevalue("etcd_server")
    prefixes = kv_prefixes()
    # the routes as an earlier Hub wrote them, in few transactions (the test
    # etcd takes large ones)
    earlier = make_proxy(
        "etcd",
        request,
        tmp_path / "earlier",
        **prefixes,
        etcd_max_txn_ops=50_000,
        etcd_max_txn_bytes=30_000_000,
    )
    target = backends["a"].url
    routes = [core.make_route(f"/user/u{i}/", target, {"user": f"u{i}"}) for i in range(6000)]
    adds = [core.Op("add", route.routespec, route) for route in routes]
    await earlier._apply_changes(core.changes_for(adds, earlier.settings))
    await earlier._close()

    proxy = make_proxy("etcd", request, tmp_path, **prefixes)
    await proxy.start()
    try:
        assert len(await proxy.get_all_routes()) == 6000
        await wait_for(lambda: _is_served_by(proxy, "/user/u5999/lab", "a"), timeout=60)
    finally:
        await proxy.stop()
        RawStore(server).delete_trees([p + "/" for p in prefixes.values()])


async def _is_served_by(proxy, path: str, backend: str) -> bool:
    try:
        return await served_by(proxy, path) == backend
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------- old store settings


OLD_NAMES = {
    # kind: (proxy class, server fixture, its new settings, old name → new name),
    # as jupyterhub-traefik-proxy 2.1.0's etcd.py and consul.py map them
    "etcd": (
        TraefikEtcdProxy,
        "etcd_auth_server",
        etcd_traits,
        {"kv_url": "etcd_url", "kv_username": "etcd_username", "kv_password": "etcd_password"},
    ),
    "consul": (
        TraefikConsulProxy,
        "consul_token_server",
        consul_traits,
        {"kv_url": "consul_url", "kv_password": "consul_password"},
    ),
}


@pytest.mark.parametrize("kind", sorted(OLD_NAMES))
async def test_old_store_setting_names_reach_the_store(kind, request, tmp_path, backends, caplog):
    """A jupyterhub_config.py of jupyterhub-traefik-proxy 2.x, with kv_url and
    the store's login under their old names, reaches that store (not the
    default one), with a DeprecationWarning and a log line naming each new setting."""
    cls, fixture, traits, renamed = OLD_NAMES[kind]
    server = request.getfixturevalue(fixture)
    assert server.url != cls.class_traits()[f"{kind}_url"].default_value
    new_settings = traits(server)
    config = Config()
    for old, new in renamed.items():
        setattr(getattr(config, cls.__name__), old, new_settings[new])
    prefixes = kv_prefixes()
    caplog.set_level(logging.WARNING)
    with pytest.warns(DeprecationWarning) as caught:
        proxy = cls(config=config, **proxy_kwargs(tmp_path, **prefixes))
    for old, new in renamed.items():
        name = cls.__name__
        expected = f"{name}.{old} is deprecated (jupyterhub-traefik-proxy 1.0); set {name}.{new} instead"
        assert expected in [str(w.message) for w in caught]
        assert expected in caplog.messages
        assert getattr(proxy, new) == new_settings[new]
    await proxy.start()
    try:
        await proxy.add_route("/user/alice/", backends["a"].url, {"user": "alice"})
        assert await served_by(proxy, "/user/alice/lab") == "a"
        # a proxy with the new names finds the route in that store
        checker = cls(**new_settings, **prefixes)
        try:
            assert (await checker.get_route("/user/alice/"))["target"] == backends["a"].url
        finally:
            await checker._kv_atomic_delete(*(p + "/" for p in prefixes.values()))
            await checker._close()
    finally:
        await proxy.stop()


async def test_consul_username_is_basic_auth_for_the_hub_and_its_traefik(tmp_path, backends):
    """jupyterhub-traefik-proxy 2.x's kv_username -> consul_username: with it,
    the Hub and the traefik it starts (CONSUL_HTTP_AUTH) reach Consul with
    HTTP basic auth, as behind a proxy that checks it; the stand-in answers
    401 to anything else, so a route served proves both sides sent it."""
    from .consul_standin import ConsulStandin
    from .servers import free_port

    standin = ConsulStandin(free_port(), basic_auth=("hub", "basic-S3cret")).start()
    config = Config()
    config.TraefikConsulProxy.kv_username = "hub"
    config.TraefikConsulProxy.kv_password = "basic-S3cret"
    try:
        with pytest.warns(DeprecationWarning) as caught:
            proxy = TraefikConsulProxy(config=config, **proxy_kwargs(tmp_path, consul_url=standin.url))
        assert any("set TraefikConsulProxy.consul_username instead" in str(w.message) for w in caught)
        assert proxy.consul_username == "hub"
        assert "token" not in proxy.traefik_static_config()["providers"]["consul"]
        await proxy.start()
        try:
            await proxy.add_route("/user/alice/", backends["a"].url, {})
            assert await served_by(proxy, "/user/alice/lab") == "a"
        finally:
            await proxy.stop()
        wrong = TraefikConsulProxy(
            consul_url=standin.url, consul_username="hub", consul_password="no", check_route_timeout=1
        )
        with pytest.raises(Exception, match="basic auth required"):  # the stand-in's 401
            await wrong.get_all_routes()
        await wrong._close()
    finally:
        standin.stop()
