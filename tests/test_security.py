"""Hostile input against a live traefik: refused, or confined to its own prefix."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .proxies import make_proxy
from .utils import Backend

# pieces an attacker would combine to break out of PathPrefix(`...`)
HOSTILE = [
    "`",
    "(",
    ")",
    "||",
    "&&",
    "!",
    '"',
    "'",
    "\\",
    " ",
    "{{",
    "}}",
    "Path",
    "Host",
    "PathPrefix(`/hub/`)",
    "/hub/",
    "%",
    "..",
    "//",
    "\n",
    "\x00",
    "#",
    "?",
    ";",
    "@",
]
fragments = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(min_size=1, max_size=6),
    st.sampled_from(HOSTILE).map(lambda s: quote(s, safe="")),  # percent-encoded forms
)
hostile_names = st.lists(fragments, min_size=1, max_size=6).map("".join)


def test_hostile_routespecs_are_refused_or_confined(request, tmp_path):
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    hub, user, attacker = (run(Backend(n).start()) for n in ("hub", "user", "attacker"))

    async def started():
        proxy = make_proxy("file", request, tmp_path)
        await proxy.start()
        await proxy.add_route("/", hub.url, {"hub": True})
        await proxy.add_route("/hub/", hub.url, {"hub": True})
        await proxy.add_route("/user/victim/", user.url, {"user": "victim"})
        return proxy

    proxy = run(started())
    client = httpx.AsyncClient(base_url=proxy.public_url)
    outcomes = {"refused": 0, "confined": 0}

    async def attempt(name: str, long: bool) -> None:
        routespec = f"/user/{name}/" if not long else f"/user/{name * 200}/"
        before = await proxy.get_all_routes()
        try:
            await proxy.add_route(routespec, attacker.url, {"user": "attacker"})
        except ValueError:
            assert await proxy.get_all_routes() == before, "refused input changed the routes"
            outcomes["refused"] += 1
            return
        outcomes["confined"] += 1
        try:
            for victim_path in ("/hub/login", "/hub/api/users", "/user/victim/lab", "/other"):
                response = await client.get(victim_path)
                assert response.json()["backend"] != "attacker", (routespec, victim_path)
        finally:
            await proxy.delete_route(routespec)

    # both halves of the claim must be exercised whatever hypothesis draws:
    # a name that is refused, and names that are odd but legal (confined)
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @example("a`) || Path(`/hub/", False)
    @example("a;b@c..d", False)
    @example("%20%3B", True)
    @given(hostile_names, st.booleans())
    def check(name, long):
        run(attempt(name, long))

    try:
        check()
    finally:
        print(f"hostile routespecs: {outcomes}")
        run(client.aclose())
        run(proxy.stop())
        for backend in (hub, user, attacker):
            run(backend.stop())
        loop.close()
    assert outcomes["refused"] > 0 and outcomes["confined"] > 0, outcomes


@pytest.mark.parametrize(
    "method, args",
    [
        ("get_route", (None,)),
        ("get_route", (42,)),
        ("get_route", ("/a`b/",)),
        ("delete_route", (None,)),
        ("delete_route", (["/x/"],)),
        ("delete_route", ("/" + "x" * 5000 + "/",)),
        ("add_route", ("/ok/", "javascript:alert(1)", {})),
        ("add_route", ("/ok/", "http://127.0.0.1:1", {"big": ["x" * 1000] * 100})),
        ("add_route", ("/ok/", "http://127.0.0.1:1", {1.5: "non-string key"})),
        ("add_route", ("/ok/", "http://127.0.0.1:1", {"nan": float("nan")})),
    ],
)
async def test_malformed_input_to_every_method_fails_fast(proxy, method, args):
    before = await proxy.get_all_routes()
    with pytest.raises(ValueError):
        await asyncio.wait_for(getattr(proxy, method)(*args), 1)
    assert await proxy.get_all_routes() == before
