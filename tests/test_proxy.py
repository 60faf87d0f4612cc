"""The JupyterHub Proxy API against a real traefik, for every backend kind.

Each test uses its own routespec prefix, so all tests of a backend share one
traefik process (see the ``proxy`` fixture in conftest.py).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from traefik_proxy import core

from .instruments import spying
from .proxies import fetch, served_by, serves
from .utils import hub_objects, wait_for


async def test_add_get_delete_with_neighbours(proxy, backends, prefix):
    a, b, hub = backends["a"].url, backends["b"].url, backends["hub"].url
    neighbours = {
        prefix: (hub, {"hub": True}),
        f"{prefix}user/%E7%A7%80%E6%A8%B9/": (b, {"user": "秀樹"}),
        f"{prefix}has%20space/": (b, {}),
        f"{prefix}has/@/": (b, {}),
        f"host-{prefix.strip('/')}.example.org/": (b, {"host": True}),
    }
    for routespec, (target, data) in neighbours.items():
        await proxy.add_route(routespec, target, data)

    routespec = f"{prefix}user/alice/"
    await proxy.add_route(routespec, a, {"user": "alice", "n": 1})
    assert await proxy.get_route(routespec) == {
        "routespec": routespec,
        "target": a,
        "data": {"user": "alice", "n": 1},
    }
    assert await served_by(proxy, f"{prefix}user/alice/lab") == "a"
    assert await served_by(proxy, f"{prefix}user/%E7%A7%80%E6%A8%B9/lab") == "b"
    assert await served_by(proxy, f"{prefix}has%20space/x") == "b"
    assert await served_by(proxy, f"{prefix}has/@/x") == "b"
    assert await served_by(proxy, f"{prefix}other") == "hub"
    assert await served_by(proxy, "/x", host=f"host-{prefix.strip('/')}.example.org") == "b"

    await proxy.delete_route(routespec)
    assert await proxy.get_route(routespec) is None
    # the deleted path falls back to the prefix's catch-all; neighbours stay
    await wait_for(lambda: serves(proxy, f"{prefix}user/alice/lab", "hub"))
    for routespec, (target, data) in neighbours.items():
        assert await proxy.get_route(routespec) == {
            "routespec": routespec,
            "target": target,
            "data": data,
        }
    assert await served_by(proxy, f"{prefix}user/%E7%A7%80%E6%A8%B9/") == "b"


async def test_trailing_slash_semantics(proxy, backends, prefix):
    await proxy.add_route(prefix, backends["hub"].url, {})
    await proxy.add_route(f"{prefix}pre", backends["a"].url, {})  # no trailing slash
    assert await proxy.get_route(f"{prefix}pre") == await proxy.get_route(f"{prefix}pre/")
    assert (await proxy.get_route(f"{prefix}pre"))["routespec"] == f"{prefix}pre/"
    assert await served_by(proxy, f"{prefix}pre") == "a"
    assert await served_by(proxy, f"{prefix}pre/") == "a"
    assert await served_by(proxy, f"{prefix}pre/anything/deeper") == "a"
    assert await served_by(proxy, f"{prefix}preother") == "hub"
    assert await served_by(proxy, f"{prefix}pr") == "hub"


async def test_longest_prefix_wins(proxy, backends, prefix):
    await proxy.add_route(f"{prefix}user/", backends["a"].url, {})
    await proxy.add_route(f"{prefix}user/bob/", backends["b"].url, {})
    assert await served_by(proxy, f"{prefix}user/bob/tree") == "b"
    assert await served_by(proxy, f"{prefix}user/bobby/tree") == "a"
    assert await served_by(proxy, f"{prefix}user/carol/") == "a"


async def test_get_all_routes_returns_what_was_added(proxy, backends, prefix):
    added = {}
    for i in range(5):
        routespec = f"{prefix}user/u{i}/"
        data = {"user": f"u{i}", "n": i, "flag": i % 2 == 0, "list": [i, "x"], "none": None}
        await proxy.add_route(routespec, backends["a"].url, data)
        added[routespec] = {"routespec": routespec, "target": backends["a"].url, "data": data}
    routes = await proxy.get_all_routes()
    assert {k: v for k, v in routes.items() if k.startswith(prefix)} == added


async def test_changed_target_is_confirmed(proxy, backends, prefix):
    routespec = f"{prefix}moving/"
    await proxy.add_route(routespec, backends["a"].url, {})
    assert await served_by(proxy, f"{prefix}moving/x") == "a"
    await proxy.add_route(routespec, backends["b"].url, {"moved": True})
    # add_route returned: Traefik must already send traffic to the new target
    assert await served_by(proxy, f"{prefix}moving/x") == "b"
    assert (await proxy.get_route(routespec))["target"] == backends["b"].url


async def test_delete_missing_route_is_not_an_error(proxy, prefix):
    await proxy.delete_route(f"{prefix}never-added/")
    assert await proxy.get_route(f"{prefix}never-added/") is None


async def test_encoded_slash_reaches_backend(proxy, backends, prefix):
    await proxy.add_route(f"{prefix}user/a/", backends["a"].url, {})
    path = f"{prefix}user/a/api/contents/x%2Fy.ipynb"
    response = await fetch(proxy, path)
    assert response.status_code == 200
    assert response.json() == {**response.json(), "backend": "a", "path": path}


async def test_host_and_origin_headers_reach_backend(proxy, backends, prefix):
    await proxy.add_route(f"{prefix}h/", backends["a"].url, {})
    response = await fetch(proxy, f"{prefix}h/api", host="hub.example.org", Origin="https://hub.example.org")
    assert response.status_code == 200
    body = response.json()
    assert body["host"] == "hub.example.org"
    assert body["origin"] == "https://hub.example.org"


async def test_websocket_passes_through(proxy, backends, prefix):
    await proxy.add_route(f"{prefix}user/ws/", backends["b"].url, {})
    url = proxy.public_url.replace("http", "ws", 1) + f"{prefix}user/ws/api/kernels/k/ws"
    async with websockets.connect(url, origin="http://hub.example.org") as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "b:ping"


@pytest.mark.parametrize(
    "routespec, target, data, match",
    [
        ("/user/x%60%29%20%7C%7C%20Path%28%60/hub/", "http://127.0.0.1:1", {}, "%60"),
        ("/user/a`)||Path(`/hub/", "http://127.0.0.1:1", {}, "Path"),
        ("/user/(x)/", "http://127.0.0.1:1", {}, r"\(x\)"),
        ("/a//b/", "http://127.0.0.1:1", {}, "/a//b/"),
        ("bad host!/x/", "http://127.0.0.1:1", {}, "bad host!"),
        ("evil.org\n/x/", "http://127.0.0.1:1", {}, "not a hostname"),
        (42, "http://127.0.0.1:1", {}, "42"),
        (None, "http://127.0.0.1:1", {}, "None"),
        ("/ok/", "ftp://127.0.0.1/", {}, "ftp://127.0.0.1/"),
        ("/ok/", "not a url", {}, "not a url"),
        ("/ok/", "http://user:secret@127.0.0.1:1", {}, "credentials"),
        ("/ok/", None, {}, "None"),
        ("/ok/", "http://127.0.0.1:1", {"x": object()}, "JSON"),
        ("/ok/", "http://127.0.0.1:1", {"x": "y" * 100_000}, "limit"),
        ("/ok/", "http://127.0.0.1:1", ["not", "a", "dict"], "dict"),
    ],
)
async def test_bad_input_is_refused_and_nothing_written(proxy, routespec, target, data, match):
    before = await proxy.get_all_routes()
    with pytest.raises(ValueError, match=match):
        await proxy.add_route(routespec, target, data)
    assert await proxy.get_all_routes() == before


async def test_concurrent_adds_are_coalesced_and_all_confirmed(proxy, backends, prefix):
    n = 50
    targets = [backends["a" if i % 2 else "b"].url for i in range(n)]
    specs = [f"{prefix}c{i}/" for i in range(n)]
    results = await asyncio.gather(
        *(proxy.add_route(s, t, {"i": i}) for i, (s, t) in enumerate(zip(specs, targets))),
        proxy.add_route(f"{prefix}bad`/", backends["a"].url, {}),
        return_exceptions=True,
    )
    assert results[:n] == [None] * n
    assert isinstance(results[n], ValueError)
    for i in (0, 1, n - 1):
        assert await served_by(proxy, f"{prefix}c{i}/x") == ("a" if i % 2 else "b")
    # add then delete of the same routespec in one burst ends deleted
    await asyncio.gather(
        proxy.add_route(f"{prefix}flip/", backends["a"].url, {}), proxy.delete_route(f"{prefix}flip/")
    )
    assert await proxy.get_route(f"{prefix}flip/") is None
    await asyncio.gather(*(proxy.delete_route(s) for s in specs))
    routes = await proxy.get_all_routes()
    assert not [r for r in routes if r.startswith(prefix)]


async def test_concurrent_adds_share_a_few_writes_and_confirmations(proxy, backends, prefix):
    """Coalescing, counted on the real methods: N concurrent add_route calls
    make a few store writes and a few waits for Traefik, not N, and every
    route is among the confirmed ones."""
    n = 20
    specs = [f"{prefix}k{i}/" for i in range(n)]
    with (
        spying(proxy, "_apply_changes") as (writes,),
        spying(proxy._api, "wait_for_live") as (confirmations,),
    ):
        results = await asyncio.gather(
            *(proxy.add_route(s, backends["a"].url, {"i": i}) for i, s in enumerate(specs))
        )
    assert results == [None] * n
    confirmed = [e.name for (expected,), _ in confirmations.calls for e in expected]
    assert sorted(confirmed) == sorted(core.route_name(s, proxy.traefik_namespace) for s in specs)
    print(f"{n} concurrent adds: {len(writes)} writes, {len(confirmations)} confirmations")
    assert 1 <= len(writes) <= 3, f"{len(writes)} store writes for {n} concurrent adds"
    assert 1 <= len(confirmations) <= 3, f"{len(confirmations)} waits for {n} concurrent adds"
    assert await served_by(proxy, f"{prefix}k{n - 1}/x") == "a"


async def test_check_routes_with_jupyterhub_objects(proxy, backends, prefix):
    users, app, hub = hub_objects(prefix, backends)
    proxy.app, proxy.hub = app, hub
    try:
        stale = f"{prefix}user/gone/"
        await proxy.add_route(stale, backends["a"].url, {"user": "gone"})
        routes = {k: v for k, v in (await proxy.get_all_routes()).items() if k.startswith(prefix)}
        await proxy.check_routes(users, {}, routes=routes)
    finally:
        proxy.app = proxy.hub = None

    routes = {k: v for k, v in (await proxy.get_all_routes()).items() if k.startswith(prefix)}
    assert set(routes) == {f"{prefix}hub/", f"{prefix}user/alice/", f"{prefix}user/bob/"}
    assert routes[f"{prefix}user/alice/"]["data"] == {"user": "alice", "server_name": ""}
    assert routes[f"{prefix}hub/"]["data"] == {"hub": True}
    assert await served_by(proxy, f"{prefix}user/alice/api") == "a"
    assert await served_by(proxy, f"{prefix}user/bob/api") == "b"
    assert await served_by(proxy, f"{prefix}hub/login") == "hub"


async def test_api_only_on_its_own_entrypoint(proxy, prefix):
    # no route of ours covers /api on the public entrypoint unless a test
    # added "/" — either way, the public side must never answer as Traefik's API
    response = await fetch(proxy, "/api/rawdata")
    assert "routers" not in response.text
    # not even behind its basic auth, with the right credentials
    assert "WWW-Authenticate" not in response.headers
    credentials = (proxy.traefik_api_username, proxy.traefik_api_password)
    async with httpx.AsyncClient(base_url=proxy.public_url, auth=credentials) as client:
        assert "routers" not in (await client.get("/api/rawdata")).text
    async with httpx.AsyncClient(base_url=proxy.client.base_url) as anonymous:
        assert (await anonymous.get("/api/rawdata")).status_code == 401
        wrong = await anonymous.get("/api/rawdata", auth=(proxy.traefik_api_username, "wrong"))
        assert wrong.status_code == 401
    assert (await proxy.client.get("/api/rawdata")).status_code == 200


async def test_router_matches_core_rule(proxy, backends, prefix):
    """What Traefik reports is exactly what the core computed."""
    routespec = f"{prefix}user/%E7%A7%80/"
    await proxy.add_route(routespec, backends["a"].url, {})
    name = core.route_name(routespec, proxy.traefik_namespace)
    router = (await proxy.client.get(f"/api/http/routers/{name}@{proxy.provider_name}")).json()
    assert router["rule"] == core.traefik_rule(routespec)
    # in a path bucket it has no priority of its own: Traefik ranks it by
    # the rule's length in bytes (more than its length in characters here)
    assert router["priority"] == len(core.traefik_rule(routespec).encode())
    assert router["priority"] > len(router["rule"])
    # it hangs in the route tree: under its innermost bucket, each bucket under
    # the one before, and the outermost alone on the public entrypoint
    chain = (await proxy._load_route_table()).chain(routespec)
    assert chain and "entryPoints" not in router
    refs = router["parentRefs"]
    for bucket in reversed(chain):
        assert refs == [f"{core.bucket_name(bucket, proxy.traefik_namespace)}@{proxy.provider_name}"]
        found = (await proxy.client.get(f"/api/http/routers/{refs[0]}")).json()
        assert found["rule"] == f"PathPrefix(`{bucket.prefix}`)"
        assert found["status"] == "enabled"
        refs = found.get("parentRefs")
    assert refs is None and json.dumps(found["entryPoints"]) == json.dumps([proxy.traefik_entrypoint])


async def test_template_braces_in_data_do_not_break_the_config(proxy, backends, prefix):
    """Traefik's file provider templates its file: '{{' in data must stay inert."""
    data = {"user": "{{ .Evil }}", "nested": {"x": ["{{{", "}}"]}}
    await proxy.add_route(f"{prefix}braces/", backends["a"].url, data)
    assert (await proxy.get_route(f"{prefix}braces/"))["data"] == data
    # Traefik still reads the whole config: a later change is served
    await proxy.add_route(f"{prefix}after-braces/", backends["b"].url, {})
    assert await served_by(proxy, f"{prefix}after-braces/x") == "b"
    with pytest.raises(ValueError, match="template"):
        await proxy.add_route(f"{prefix}%7B%7Bx/", backends["a"].url, {})


async def test_a_router_caught_without_its_place_stays_off_the_api_entrypoint(proxy, backends, prefix):
    """A key-value listing read in pages can catch a child router without its
    parentRefs: Traefik then puts it on the default entrypoints, which are
    the public one alone (asDefault), never the API's."""
    name = f"halfread-{prefix.strip('/')}"
    half_read = {
        "http": {
            "routers": {name: {"rule": f"PathPrefix(`{prefix}`)", "service": name}},
            "services": {name: {"loadBalancer": {"servers": [{"url": backends["b"].url}]}}},
        }
    }
    await proxy._apply_changes(core.Changes(merge=half_read))
    try:
        await wait_for(lambda: serves(proxy, f"{prefix}x", "b"))
        async with httpx.AsyncClient(base_url=proxy.traefik_api_url, verify=False) as api:
            assert (await api.get(f"{prefix}x")).status_code == 404
    finally:
        await proxy._apply_changes(
            core.Changes(delete=[("http", "routers", name), ("http", "services", name)])
        )
