"""Properties of reading Traefik's API: is a route live with its target?"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import (
    Expected,
    Op,
    Route,
    Settings,
    expectations,
    is_live,
    live_in_rawdata,
    normalize_routespec,
    route_fragment,
    route_name,
    traefik_rule,
)

from .strategies import FAST, routespecs

targets = st.sampled_from(
    ["http://127.0.0.1:8888", "http://10.0.0.5:8888/user/a/", "https://h.example:443", "http://[::1]:9"]
)
providers = st.sampled_from(["file", "etcd", "redis", "consulcatalog", "consul"])


@st.composite
def live_routes(draw):
    routespec = normalize_routespec(draw(routespecs())[0])
    route = Route(routespec, draw(targets))
    settings = Settings(namespace=draw(st.sampled_from(["jupyterhub", "hub-2"])))
    name = route_name(routespec, settings.namespace)
    [expected] = expectations([Op("add", routespec, route)], settings)
    assert expected.name == name and expected.rule == traefik_rule(routespec)
    return route, settings, expected


def payloads(route: Route, settings: Settings, provider: str):
    """Router and service as Traefik's API reports the dynamic config we wrote."""
    fragment = route_fragment(route, settings)["http"]
    name = route_name(route.routespec, settings.namespace)
    router = dict(fragment["routers"][name])
    router.update(
        service=f"{name}@{provider}",
        status="enabled",
        using=list(router["entryPoints"]),
        name=f"{name}@{provider}",
        provider=provider,
    )
    service = dict(fragment["services"][name])
    service.update(
        status="enabled",
        usedBy=[f"{name}@{provider}"],
        serverStatus={route.target: "UP"},
        name=f"{name}@{provider}",
        provider=provider,
    )
    return router, service


@FAST
@given(live_routes(), providers)
def test_what_we_wrote_is_live(live, provider):
    route, settings, expected = live
    router, service = payloads(route, settings, provider)
    assert is_live(router, service, expected)
    key = f"{expected.name}@{provider}"
    rawdata = {"routers": {key: router}, "services": {key: service}}
    assert live_in_rawdata(rawdata, expected, provider)


@FAST
@given(live_routes(), providers, st.data())
def test_any_change_makes_it_not_live(live, provider, data):
    route, settings, expected = live
    router, service = payloads(route, settings, provider)
    change = data.draw(
        st.sampled_from(
            [
                "target",
                "extra server",
                "no servers",
                "rule",
                "priority",
                "entrypoints",
                "half-read router",
                "service name",
                "status",
                "no status",
                "no router",
                "no service",
                "other provider",
            ]
        )
    )
    other_target = data.draw(
        targets.filter(lambda t: t != route.target) | st.text(max_size=10).filter(lambda t: t != route.target)
    )
    if change == "target":
        service["loadBalancer"] = {"servers": [{"url": other_target}]}
    elif change == "extra server":
        service["loadBalancer"] = {"servers": [{"url": route.target}, {"url": other_target}]}
    elif change == "no servers":
        service["loadBalancer"] = {"servers": []}
    elif change == "rule":
        other = data.draw(st.text(max_size=40).filter(lambda r: r != expected.rule))
        router["rule"] = other
    elif change == "priority":
        router["priority"] = expected.priority + data.draw(st.integers(1, 100))
    elif change == "entrypoints":
        router["entryPoints"] = data.draw(st.sampled_from([[], ["other"], ["http", "other"]]))
    elif change == "half-read router":
        # a key-value provider read the store mid-write: fields are missing
        for field in data.draw(
            st.lists(st.sampled_from(["priority", "entryPoints", "service"]), min_size=1, unique=True)
        ):
            router.pop(field, None)
    elif change == "service name":
        router["service"] = "someone-else@" + provider
    elif change == "status":
        router["status"] = data.draw(st.sampled_from(["disabled", "warning", "Enabled", ""]))
    elif change == "no status":
        del router["status"]
    key = f"{expected.name}@{provider}"
    routers = {} if change == "no router" else {key: router}
    services = {} if change == "no service" else {key: service}
    lookup = "elsewhere" if change == "other provider" else provider

    if change not in ("no router", "no service", "other provider"):
        assert not is_live(router, service, expected)
    assert not live_in_rawdata({"routers": routers, "services": services}, expected, lookup)


@FAST
@given(live_routes(), live_routes(), providers)
def test_another_routes_payload_is_not_ours(a, b, provider):
    route_a, settings_a, expected_a = a
    route_b, settings_b, expected_b = b
    router_b, service_b = payloads(route_b, settings_b, provider)
    same = expected_a == expected_b
    assert is_live(router_b, service_b, expected_a) == same


def test_empty_rawdata():
    expected = Expected(
        name="n", rule="PathPrefix(`/`)", target="http://127.0.0.1:1", priority=1, entrypoints=("http",)
    )
    assert not live_in_rawdata({}, expected, "file")
    assert not live_in_rawdata({"routers": None, "services": None}, expected, "file")
