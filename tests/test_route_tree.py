"""The route tree (issue 12) through a real traefik, for every backend kind.

Routes hang under buckets of their user segment's leading characters (Traefik's
multi-layer routing). These tests check, through Traefik's public entrypoint,
that routing is what it was with every route on the entrypoint: the longest
prefix wins across bucket levels, a request that enters a bucket but matches
no route reaches the longest flat route above it (and follows that route when
it comes and goes), and a request reaches its backend exactly as the client
sent it. ``properties/test_route_tree.py`` checks the same against a model,
over many more shapes; this is Traefik itself.
"""

from __future__ import annotations

import logging

import httpx
import pytest
import websockets

from traefik_proxy import core

from .kv_support import kv_prefixes
from .proxies import Poller, fetch, make_proxy, served_by, serves
from .utils import wait_for


async def test_longest_prefix_wins_across_bucket_levels(proxy, backends, prefix):
    a, b, hub = backends["a"].url, backends["b"].url, backends["hub"].url
    routes = {
        prefix: hub,  # flat: the fallback of every bucket below it
        f"{prefix}user/alice/": a,  # under /user/a and /user/al
        f"{prefix}user/alice/server2/": b,  # a named server: same buckets, longer
        f"{prefix}user/al/": b,  # a two-character name: in /user/al itself
        f"{prefix}user/a/": b,  # a one-character name: in /user/a only
        f"{prefix}user/%C3%A9mile/": a,  # a non-ASCII first character
    }
    for routespec, target in routes.items():
        await proxy.add_route(routespec, target, {"hub": True} if target == hub else {})
    expected = {
        "user/alice/server2/lab": "b",
        "user/alice/server2": "b",
        "user/alice/server23": "a",  # not under server2/
        "user/alice/lab": "a",
        "user/alice": "a",  # without the slash
        "user/al/x": "b",
        "user/al": "b",
        "user/a/x": "b",
        "user/a": "b",
        "user/alx/": "hub",  # in /user/al, no route: the rest of /user/al
        "user/ab": "hub",  # in /user/a, no /user/ab bucket: the rest of /user/a
        "user/%C3%A9mile/tree": "a",
        "user/%C3%A9mil": "hub",
        "user/": "hub",  # above every bucket
        "hub/home": "hub",
    }
    for path, backend in expected.items():
        assert await served_by(proxy, prefix + path) == backend, path
    # every user route is a child router: none of them is on the entrypoint
    routers = await proxy.client.get("/api/http/routers", params={"per_page": 10000})
    on_entrypoint = {r["name"].split("@")[0] for r in routers.json() if r.get("entryPoints")}
    for routespec in routes:
        name = core.route_name(routespec, proxy.traefik_namespace)
        assert (name in on_entrypoint) == (routespec == prefix), routespec


async def test_a_bucket_falls_back_to_the_flat_route_that_comes_and_goes(proxy, backends, prefix):
    """Misses in a bucket reach the Hub; a shorter route of the same bucket
    (``<prefix>user/`` is bucketed here) takes them while it exists; emptied
    buckets go. The rest following a *flat* route: the next test."""
    hub, b = backends["hub"].url, backends["b"].url
    await proxy.add_route(prefix, hub, {"hub": True})
    await proxy.add_route(f"{prefix}user/bob/", backends["a"].url, {})
    assert await served_by(proxy, f"{prefix}user/bobby/") == "hub"
    # a flat route between the Hub and the buckets takes their misses over...
    await proxy.add_route(f"{prefix}user/", b, {})
    assert await served_by(proxy, f"{prefix}user/bobby/") == "b"
    assert await served_by(proxy, f"{prefix}user/bob/") == "a"
    # ...and gives them back when it goes
    await proxy.delete_route(f"{prefix}user/")
    await wait_for(lambda: serves(proxy, f"{prefix}user/bobby/", "hub"))
    # a bucket emptied of its routes goes; its requests still reach the Hub
    chain = (await proxy._load_route_table()).chain(f"{prefix}user/bob/")
    assert chain
    await proxy.delete_route(f"{prefix}user/bob/")
    await wait_for(lambda: serves(proxy, f"{prefix}user/bob/", "hub"))
    for bucket in chain:
        name = core.bucket_name(bucket, proxy.traefik_namespace)
        await wait_for(lambda: _router_gone(proxy, name))


async def test_a_bucket_rest_follows_a_flat_route_between_the_hub_and_the_bucket(request, tmp_path, backends):
    """In the shared proxy above, ``<prefix>user/`` is itself bucketed (the
    bucketed segment is the prefix's next one), so it never is the flat route
    a bucket falls back to. Here the user segment is the third: ``/t/user/`` is
    flat, between the Hub's ``/t/`` and the buckets of ``/t/user/b...``."""
    proxy = make_proxy("file", request, tmp_path, traefik_route_tree_segment=2)
    await proxy.start()
    try:
        await proxy.add_route("/t/", backends["hub"].url, {"hub": True})
        await proxy.add_route("/t/user/bob/", backends["a"].url, {})
        assert await served_by(proxy, "/t/user/bobby/") == "hub"
        await proxy.add_route("/t/user/", backends["b"].url, {})
        assert await served_by(proxy, "/t/user/bobby/") == "b"
        assert await served_by(proxy, "/t/user/bob/") == "a"
        await proxy.delete_route("/t/user/")
        await wait_for(lambda: serves(proxy, "/t/user/bobby/", "hub"))
    finally:
        await proxy.stop()


async def _router_gone(proxy, name: str) -> bool:
    answer = await proxy.client.get(f"/api/http/routers/{name}@{proxy.provider_name}")
    return answer.status_code == 404


async def test_requests_reach_the_backend_as_the_client_sent_them(proxy, backends, prefix):
    """No hop inside traefik: X-Forwarded-* and Host are the client's, the raw path is kept."""
    await proxy.add_route(f"{prefix}user/carol/", backends["a"].url, {})
    response = await fetch(proxy, f"{prefix}user/carol/api/contents/a%2Fb%20c", host="hub.example.org")
    body = response.json()
    assert body["backend"] == "a"
    assert body["path"] == f"{prefix}user/carol/api/contents/a%2Fb%20c"
    assert body["host"] == "hub.example.org"
    assert body["x_forwarded_host"] == "hub.example.org"
    assert body["x_forwarded_for"] == "127.0.0.1"
    assert body["x_forwarded_proto"] == "http"
    # a websocket through two bucket levels
    url = proxy.public_url.replace("http", "ws", 1).rstrip("/") + f"{prefix}user/carol/ws"
    async with websockets.connect(url) as ws:
        await ws.send("hi")
        assert await ws.recv() == "a:hi"


async def test_the_api_is_not_reachable_from_the_public_entrypoint(proxy, backends, prefix):
    """Buckets add routers to the public entrypoint; none of them serves Traefik's API."""
    await proxy.add_route(f"{prefix}user/dave/", backends["a"].url, {})
    async with httpx.AsyncClient(base_url=proxy.public_url) as public:
        for path in ("/api/rawdata", "/api/http/routers", "/dashboard/", "/metrics"):
            answer = await public.get(path, auth=(proxy.traefik_api_username, proxy.traefik_api_password))
            assert "routers" not in answer.text and answer.status_code in (404, 200), path
            if answer.status_code == 200:  # a Hub route of another test answered
                assert "backend" in answer.json(), path


@pytest.mark.parametrize("kind", ["file", "etcd", "redis"])
async def test_a_store_written_flat_is_moved_into_the_tree_at_start(
    kind, request, tmp_path, backends, caplog
):
    """A store from before the tree (every route on the entrypoint, as
    ``traefik_route_tree_depth = 0`` still writes it) is re-laid at start;
    the start after that has nothing to move; from the fixed tree of earlier
    versions (``traefik_route_tree_bucket_size = 0``, two levels) to the
    adaptive one (one level for these few names) and back; and back to flat."""
    shared = {**kv_prefixes()} if kind != "file" else {"dynamic_config_file": str(tmp_path / "rules.toml")}
    routes = {"/": "hub", "/user/alice/": "a", "/user/alice/server2/": "b", "/user/bob/": "b"}

    async def started(name: str, depth: int, size: int = 32):
        proxy = make_proxy(
            kind,
            request,
            tmp_path / name,
            traefik_route_tree_depth=depth,
            traefik_route_tree_bucket_size=size,
            **shared,
        )
        caplog.clear()
        await proxy.start()
        return proxy

    flat = await started("flat", 0)
    try:
        for routespec, backend in routes.items():
            await flat.add_route(routespec, backends[backend].url, {"hub": True} if routespec == "/" else {})
    finally:
        await flat.stop()
    caplog.set_level(logging.INFO, logger=f"traefik_proxy.test.{kind}")
    steps = (
        ("tree", 2, 32, True),
        ("again", 2, 32, False),
        ("fixed", 2, 0, True),
        ("fixed-again", 2, 0, False),
        ("adaptive", 2, 32, True),
        ("flat-again", 0, 32, True),
    )
    for name, depth, size, moved in steps:
        proxy = await started(name, depth, size)
        try:
            lines = [r.getMessage() for r in caplog.records if "Route tree" in r.getMessage()]
            assert bool(lines) == moved, (name, lines)
            for path, backend in {
                "/user/alice/lab": "a",
                "/user/alice/server2/x": "b",
                "/user/bob": "b",
                "/user/bobby/": "hub",
                "/hub/home": "hub",
            }.items():
                assert await served_by(proxy, path) == backend, (name, path)
            routers = await proxy._api.list_routers()
            buckets = [r["name"] for r in routers if core.is_bucket_router(r["name"].split("@")[0])]
            # fixed: /user/a, /user/al, /user/b, /user/bo; adaptive: /user/a, /user/b
            assert len(buckets) == (0 if not depth else 2 if size else 4), (name, buckets)
            assert all(r.get("status") == "enabled" for r in routers), routers
            assert set(await proxy.get_all_routes()) == set(routes)
        finally:
            await proxy.stop()


async def test_host_routes_hang_under_host_buckets(proxy, backends, prefix):
    """JupyterHub's subdomains: host routes under HostRegexp buckets, beside
    copies of the path-only routes, route as they do on the entrypoint."""
    tag = prefix.strip("/")
    a, b, hub = backends["a"].url, backends["b"].url, backends["hub"].url
    alice, albert = f"al-{tag}.example.org", f"alb-{tag}.example.org"
    await proxy.add_route(f"{prefix}", hub, {"hub": True})  # path-only: every host
    await proxy.add_route(f"{alice}/", a, {})
    await proxy.add_route(f"{alice}/user/al/server2/", b, {})
    await proxy.add_route(f"{albert}/", b, {})
    expected = {
        (alice, "/lab"): "a",
        (alice.upper(), "/lab"): "a",  # hosts match whatever their case
        (alice, "/user/al/server2/x"): "b",
        (albert, "/"): "b",
        (alice, f"{prefix}x"): "a",  # the host route's priority counts its host
        (f"ali-{tag}.example.org", f"{prefix}x"): "hub",  # in a bucket, no host route
    }
    for (host, path), backend in expected.items():
        assert await served_by(proxy, path, host=host) == backend, (host, path)
    name = core.route_name(f"{alice}/", proxy.traefik_namespace)
    router = (await proxy.client.get(f"/api/http/routers/{name}@{proxy.provider_name}")).json()
    inner = (await proxy._load_route_table()).hangs_in(f"{alice}/")
    assert inner is not None and inner.host and inner.prefix == "a"  # two names: one bucket
    assert router["parentRefs"] == [
        f"{core.bucket_name(inner, proxy.traefik_namespace)}@{proxy.provider_name}"
    ]
    # the path-only route goes: the host buckets' copies of it go too
    await proxy.delete_route(f"{prefix}")
    await wait_for(lambda: _served_is_not(proxy, f"{prefix}x", "hub", f"ali-{tag}.example.org"))
    assert await served_by(proxy, "/lab", host=alice) == "a"


async def _served_is_not(proxy, path: str, backend: str, host: str) -> bool:
    return await served_by(proxy, path, host=host) != backend


def test_tree_settings_follow_base_url_and_refuse_negative_values():
    from types import SimpleNamespace

    from traefik_proxy import TraefikFileProviderProxy

    assert TraefikFileProviderProxy().settings.tree_segment == 1
    under_jhub = TraefikFileProviderProxy(app=SimpleNamespace(base_url="/jhub/"))
    assert under_jhub.settings.tree_segment == 2
    assert [b.prefix for b in core.bucket_chain("/jhub/user/alice/", 2, 2)] == [
        "/jhub/user/a",
        "/jhub/user/al",
    ]
    for name in ("traefik_route_tree_depth", "traefik_route_tree_segment"):
        with pytest.raises(Exception, match=f"{name} = -1 is negative; set c.TraefikProxy.{name} to 0"):
            TraefikFileProviderProxy(**{name: -1})


async def test_buckets_split_and_merge_while_their_routes_are_served(proxy, backends, prefix):
    """The adaptive tree (default: buckets of at most 32 names) through Traefik:
    40 sequential names split the bucket of ``u`` into buckets per next
    character, deleting 30 merges them back; a poller requesting ten routes
    that stay throughout (they move between buckets) gets each one's backend
    every time, and the routers left are the merged layout's."""
    a, b, hub = backends["a"].url, backends["b"].url, backends["hub"].url
    await proxy.add_route(prefix, hub, {"hub": True})
    names = [f"u{i:02d}" for i in range(40)]
    kept = names[:10]
    for name in names[:32]:
        await proxy.add_route(f"{prefix}{name}/", a if name in kept else b, {})
    settings = proxy.settings
    split = core.Bucket(f"{prefix}u0", 2)  # where u00..u09 hang once u splits
    split_name = core.bucket_name(split, settings.namespace)
    async with Poller(proxy, [f"{prefix}{name}/x" for name in kept], "a") as poller:
        for name in names[32:]:
            await proxy.add_route(f"{prefix}{name}/", b, {})
        assert await _router_present(proxy, split_name)
        assert await served_by(proxy, f"{prefix}u0x/") == "hub"  # the new bucket's rest
        for name in names[10:]:
            await proxy.delete_route(f"{prefix}{name}/")
    assert poller.sent > 0 and not poller.misses, poller.misses[:5]
    await wait_for(lambda: _router_gone(proxy, split_name), timeout=10)
    for name in kept:
        assert await served_by(proxy, f"{prefix}{name}/") == "a"
    assert await served_by(proxy, f"{prefix}{names[20]}/") == "hub"


async def test_host_buckets_split_and_merge_while_their_routes_are_served(proxy, backends, prefix):
    """JupyterHub's subdomains with sequential names: 40 hosts ``u00-<tag>``...
    split the host bucket of ``u``, deleting 30 merges it back; a poller
    requesting ten hosts that stay throughout (each with two routes, which
    move together) gets each one's backend every time; a host with no route
    reaches the Hub's path-only ``/`` before, during and after."""
    tag = prefix.strip("/")
    a, b, hub = backends["a"].url, backends["b"].url, backends["hub"].url
    await proxy.add_route(prefix, hub, {"hub": True})  # path-only: the Hub's, for every host
    names = [f"u{i:02d}-{tag}" for i in range(40)]
    kept = names[:10]
    for name in names[:32]:
        await proxy.add_route(f"{name}.example.org/", a if name in kept else b, {})
        if name in kept:
            await proxy.add_route(f"{name}.example.org/user/{name}/lab/", a, {})
    split = core.Bucket("u0", 2, host=True, domain="example.org")  # where u00..u09 hang once u splits
    split_name = core.bucket_name(split, proxy.settings.namespace)
    targets = [(f"{name}.example.org", path) for name in kept for path in ("/x", f"/user/{name}/lab/x")]
    async with Poller(proxy, targets, "a") as poller:
        for name in names[32:]:
            await proxy.add_route(f"{name}.example.org/", b, {})
        assert await _router_present(proxy, split_name)
        assert await served_by(proxy, f"{prefix}x", host=f"u0x-{tag}.example.org") == "hub"
        for name in names[10:]:
            await proxy.delete_route(f"{name}.example.org/")
    assert poller.sent > 0 and not poller.misses, poller.misses[:5]
    await wait_for(lambda: _router_gone(proxy, split_name), timeout=10)
    for name in kept:
        assert await served_by(proxy, "/", host=f"{name}.example.org") == "a"
    assert await served_by(proxy, f"{prefix}x", host=f"{names[20]}.example.org") == "hub"


async def test_a_long_shared_start_nests_a_level_per_character(proxy, backends, prefix):
    """34 names sharing 17 characters (``jupyter-user-2026...``): the bucket splits
    at each character they share, 18 levels deep; Traefik routes through all."""
    a, hub = backends["a"].url, backends["hub"].url
    await proxy.add_route(prefix, hub, {"hub": True})
    names = [f"jupyter-user-2026{i:02d}" for i in range(34)]
    for name in names:
        await proxy.add_route(f"{prefix}{name}/", a, {})
    table = await proxy._load_route_table()
    assert len(table.chain(f"{prefix}{names[0]}/")) == 18
    for name in (names[0], names[17], names[33]):
        assert await served_by(proxy, f"{prefix}{name}/lab") == "a", name
    assert await served_by(proxy, f"{prefix}jupyter-user-2026/") == "hub"
    assert await served_by(proxy, f"{prefix}jupyter-x/") == "hub"


async def _router_present(proxy, name: str) -> bool:
    response = await proxy.client.get(f"/api/http/routers/{name}@{proxy.provider_name}")
    return response.status_code == 200
