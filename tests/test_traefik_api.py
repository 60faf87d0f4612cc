"""TraefikAPI's requests and confirmation, against MockTraefik (no real traefik).

What the real traefik answers is checked in test_proxy.py and friends; here
the point is which requests confirmation makes, in which order, and when it
gives up.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from traefik_proxy import core
from traefik_proxy.traefik_api import RAWDATA_THRESHOLD, TraefikAPI

USER, PASSWORD = "hub", "secret"


def expected(name: str, target: str = "http://10.0.0.1:8888") -> core.Expected:
    return core.Expected(
        name=name,
        rule=f"PathPrefix(`/user/{name}/`)",
        target=target,
        priority=10,
        entrypoints=("http",),
    )


class MockTraefik:
    """An in-memory stand-in for Traefik's API, behind httpx.MockTransport.

    It serves the routes it is given (per host, so replicas can differ),
    checks basic auth, and records every request path as ``host path``.
    """

    def __init__(self):
        self.routes: dict[str, dict[str, core.Expected]] = {}  # host -> name -> route
        self.requests: list[str] = []
        self.polls_until_live = 0  # answer "not there" to this many router requests first
        self.down: set[str] = set()  # hosts whose API refuses connections

    def serve(self, host: str, *routes: core.Expected) -> None:
        self.routes.setdefault(host, {}).update({r.name: r for r in routes})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        self.requests.append(f"{host} {path}")
        if host in self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != good:
            return httpx.Response(401)
        routes = self.routes.get(host, {})
        if path == "/api/overview":
            return httpx.Response(200, json={})
        if path == "/api/rawdata":
            return httpx.Response(
                200,
                json={
                    "routers": {f"{n}@file": self.router(r) for n, r in routes.items()},
                    "services": {f"{n}@file": self.service(r) for n, r in routes.items()},
                },
            )
        kind, _, key = path.removeprefix("/api/http/").partition("/")
        route = routes.get(key.removesuffix("@file"))
        if kind == "routers" and self.polls_until_live > 0:
            self.polls_until_live -= 1
            route = None
        if route is None:
            return httpx.Response(404)
        payload = self.router(route) if kind == "routers" else self.service(route)
        return httpx.Response(200, json=payload)

    @staticmethod
    def router(route: core.Expected) -> dict:
        return {
            "status": "enabled",
            "rule": route.rule,
            "priority": route.priority,
            "entryPoints": list(route.entrypoints),
            "service": route.name,
        }

    @staticmethod
    def service(route: core.Expected) -> dict:
        return {"loadBalancer": {"servers": [{"url": route.target}]}}


@pytest.fixture
def traefik():
    return MockTraefik()


def api_for(traefik: MockTraefik, password: str = PASSWORD, **kwargs) -> TraefikAPI:
    kwargs.setdefault("timeout", 1.0)
    return TraefikAPI(
        "http://traefik:8099",
        USER,
        password,
        provider="file",
        poll_interval=0.001,
        transport=traefik.transport(),
        **kwargs,
    )


async def test_a_route_is_confirmed_by_its_router_then_its_service(traefik):
    route = expected("alice")
    traefik.serve("traefik", route)
    api = api_for(traefik)
    assert await api.wait_for_live([route]) == set()
    assert traefik.requests == [
        "traefik /api/http/routers/alice@file",
        "traefik /api/http/services/alice@file",
    ]
    await api.aclose()


async def test_no_service_request_while_the_router_is_missing(traefik):
    route = expected("alice")
    traefik.serve("traefik", route)
    traefik.polls_until_live = 3
    api = api_for(traefik)
    assert await api.wait_for_live([route]) == set()
    assert traefik.requests == ["traefik /api/http/routers/alice@file"] * 4 + [
        "traefik /api/http/services/alice@file"
    ]
    await api.aclose()


async def test_a_large_batch_polls_its_last_route_then_lists_once(traefik):
    batch = [expected(f"u{i}") for i in range(RAWDATA_THRESHOLD + 3)]
    traefik.serve("traefik", *batch)
    traefik.polls_until_live = 2  # the sentinel shows up on the third poll
    api = api_for(traefik)
    assert await api.wait_for_live(batch) == set()
    sentinel = batch[-1].name
    assert traefik.requests == [f"traefik /api/http/routers/{sentinel}@file"] * 3 + [
        f"traefik /api/http/services/{sentinel}@file",
        "traefik /api/rawdata",
    ]
    await api.aclose()


async def test_a_small_batch_checks_each_route(traefik):
    batch = [expected(f"u{i}") for i in range(RAWDATA_THRESHOLD)]
    traefik.serve("traefik", *batch)
    api = api_for(traefik)
    assert await api.wait_for_live(batch) == set()
    assert "traefik /api/rawdata" not in traefik.requests
    assert len(traefik.requests) == 2 * len(batch)
    await api.aclose()


async def test_a_stale_target_is_not_live(traefik):
    traefik.serve("traefik", expected("alice", target="http://10.0.0.1:1111"))
    api = api_for(traefik, timeout=0.2)
    wanted = expected("alice", target="http://10.0.0.1:2222")
    assert not await api.is_live(wanted)
    assert await api.wait_for_live([wanted]) == {"alice"}
    await api.aclose()


async def test_only_the_missing_routes_of_a_batch_are_reported(traefik):
    batch = [expected(f"u{i}") for i in range(RAWDATA_THRESHOLD + 2)]
    traefik.serve("traefik", *batch[:2], batch[-1])  # the sentinel is there, two others not
    api = api_for(traefik, timeout=0.2)
    assert await api.wait_for_live(batch) == {r.name for r in batch[2:-1]}
    await api.aclose()


async def test_401_raises_permission_error_naming_the_user(traefik):
    api = api_for(traefik, password="wrong")
    with pytest.raises(PermissionError, match=f"'{USER}'"):
        await api.wait_for_live([expected("alice")])
    await api.aclose()


async def test_every_replica_must_serve_the_route(traefik):
    route = expected("alice")
    traefik.serve("traefik", route)
    api = api_for(traefik, timeout=0.2, replica_urls=["http://replica:8099"])
    assert await api.wait_for_live([route]) == {"alice"}  # the replica lacks it
    assert any(r.startswith("replica ") for r in traefik.requests)
    traefik.serve("replica", route)
    assert await api.wait_for_live([route]) == set()
    await api.aclose()


async def test_a_replica_refusing_connections_is_not_waited_for(traefik, caplog):
    """It serves nothing; a stale one is waited for; with none answering, the first is."""
    route = expected("alice")
    traefik.serve("traefik", route)
    api = api_for(traefik, timeout=0.3, replica_urls=["http://replica:8099", "http://stale:8099"])
    traefik.serve("stale", route)
    traefik.down.add("replica")
    with caplog.at_level("WARNING"):
        assert await api.wait_for_live([route]) == set()
        assert await api.wait_for_live([route]) == set()
    warned = [r.getMessage() for r in caplog.records if "refuses connections" in r.getMessage()]
    assert len(warned) == 1 and "replica:8099" in warned[0]  # once per outage
    # the main one down too: the stale replica still decides
    traefik.down.add("traefik")
    traefik.routes["stale"] = {}
    assert await api.wait_for_live([route]) == {"alice"}
    # nobody answers: waited for until the timeout, as without replicas
    traefik.down.add("stale")
    started = asyncio.get_running_loop().time()
    assert await api.wait_for_live([route]) == {"alice"}
    assert asyncio.get_running_loop().time() - started >= 0.3
    await api.aclose()


async def test_the_pause_between_polls_is_at_least_the_poll_time(traefik):
    """A slow API is polled at most about half of the time."""
    route = expected("alice")
    traefik.serve("traefik", route)
    traefik.polls_until_live = 3
    times: list[float] = []
    slow = traefik.handle

    async def handle(request):
        times.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.05)
        return slow(request)

    api = TraefikAPI(
        "http://traefik:8099",
        USER,
        PASSWORD,
        provider="file",
        poll_interval=0.001,
        timeout=5,
        transport=httpx.MockTransport(handle),
    )
    assert await api.wait_for_live([route]) == set()
    gaps = [b - a for a, b in zip(times, times[1:4])]
    assert all(gap >= 0.095 for gap in gaps), gaps
    await api.aclose()


async def test_wait_until_answering_gives_up_when_check_raises(traefik):
    api = api_for(traefik, password="wrong", timeout=5)

    def check():
        raise RuntimeError("traefik exited")

    with pytest.raises(RuntimeError, match="exited"):
        await api.wait_until_answering(check)
    await api.aclose()
    api = api_for(traefik)
    await api.wait_until_answering()
    assert traefik.requests[-1] == "traefik /api/overview"
    await api.aclose()


async def test_wait_until_answering_times_out_with_the_last_answer(traefik):
    api = api_for(traefik, password="wrong", timeout=0.1)
    with pytest.raises(TimeoutError, match="HTTP 401"):
        await api.wait_until_answering()
    await api.aclose()


async def test_a_large_batch_whose_last_route_never_shows_reports_only_it(traefik):
    """The sentinel (the last route, polled alone first) never shows up: at
    the deadline the others are listed once and only the sentinel is missing."""
    batch = [expected(f"u{i}") for i in range(RAWDATA_THRESHOLD + 2)]
    traefik.serve("traefik", *batch[:-1])
    api = api_for(traefik, timeout=0.2)
    assert await api.wait_for_live(batch) == {batch[-1].name}
    assert traefik.requests[-1] == "traefik /api/rawdata"
    await api.aclose()
