"""Which routers on the public entrypoint, not written by this Hub, outrank it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.legacy_layouts import LEGACY_KV
from traefik_proxy.core import (
    HOST_ROUTE_PRIORITY,
    ForeignRouter,
    Route,
    Settings,
    foreign_routers,
    foreign_routers_warning,
    is_hub_router,
    route_fragment,
    route_name,
    unflatten,
)

from .strategies import FAST, routespecs

HUB = {"provider": "redis", "namespace": "jupyterhub", "entrypoint": "http"}


def payload(name, rule, priority=None, provider="redis", entrypoints=("http",), status="enabled"):
    """One entry of Traefik's /api/http/routers, as Traefik 3.7 lists it."""
    router = {
        "name": f"{name}@{provider}",
        "provider": provider,
        "rule": rule,
        "entryPoints": list(entrypoints),
        "status": status,
        "service": "x",
    }
    if priority is not None:
        router["priority"] = priority
    return router


def hub_payload(routespec: str) -> dict:
    route = Route(routespec, "http://127.0.0.1:1", {})
    name = route_name(routespec)
    router = route_fragment(route, Settings())["http"]["routers"][name]
    return payload(name, router["rule"], router["priority"])


def test_the_old_proxys_routers_are_named_as_traefik_reports_them():
    # jupyterhub-traefik-proxy 2.1.0's routers in a store, listed by Traefik:
    # no priority configured, so Traefik reports the rule's length (in bytes)
    old = unflatten({k: v for k, v in LEGACY_KV.items() if k.startswith("traefik/")})["traefik"]
    listed = [
        payload(name, router["rule"], len(router["rule"].encode()), entrypoints=router["entryPoints"])
        for name, router in old["http"]["routers"].items()
    ]
    listed += [hub_payload("/"), hub_payload("/user/alice/")]
    listed += [
        payload("api", "PathPrefix(`/api`)", 2**63 - 2, provider="internal", entrypoints=["traefik"]),
        payload("acme-http", "PathPrefix(`/.well-known/acme-challenge/`)", 2**63 - 1, provider="internal"),
    ]
    found = foreign_routers(listed, **HUB, hub_routespecs=["/", "/user/alice/"])
    assert [r.name for r in found] == [
        "router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F@redis",  # the longest rule first
        "router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F@redis",
        "router__2Fuser_2Falice_2F@redis",
        "router__2F@redis",
    ]  # route_api is on the API entrypoint; Traefik's own routers are not the Hub's business
    alice = next(r for r in found if r.name.startswith("router__2Fuser_2Falice_2F"))
    assert alice == ForeignRouter(
        "router__2Fuser_2Falice_2F@redis",
        "redis",
        "( PathPrefix(`/user/alice/`) || Path(`/user/alice`) )",
        53,
    )
    warning = foreign_routers_warning(found, "http")
    assert warning.startswith("4 router(s) on entrypoint 'http' were not written by this Hub")
    assert "router__2Fuser_2Falice_2F@redis (priority 53" in warning
    assert foreign_routers_warning([], "http") == ""


def test_a_router_without_entrypoints_is_on_all_of_them_and_unset_priority_is_rule_length():
    rule = "PathPrefix(`/sité`)"
    found = foreign_routers([payload("site", rule, entrypoints=())], **HUB)
    assert found == [ForeignRouter("site@redis", "redis", rule, len(rule) + 1)]  # bytes, as Go counts


@FAST
@given(st.lists(routespecs(), min_size=1, max_size=4), st.integers(1, 10**6))
def test_the_hubs_own_routers_are_never_named(specs, bump):
    listed = [
        hub_payload(Route(s[0] if s[0].endswith("/") else s[0] + "/", "http://a.b", {}).routespec)
        for s in specs
    ]
    listed = [dict(r, priority=r["priority"] + bump) for r in listed]
    assert all(is_hub_router(r, provider="redis", namespace="jupyterhub") for r in listed)
    assert foreign_routers(listed, **HUB) == []


@FAST
@given(
    rule=st.sampled_from(
        ["PathPrefix(`/x`)", "Host(`a.b`) && PathPrefix(`/`)", "Path(`/metrics`)", "HostRegexp(`.+`)"]
    ),
    priority=st.integers(1, 10**6) | st.integers(HOST_ROUTE_PRIORITY, HOST_ROUTE_PRIORITY + 20),
    more=st.integers(0, 10**6),
    hub_specs=st.lists(
        st.sampled_from(["/", "/user/alice/", "a.b/user/x/", "/hub/"]), min_size=1, unique=True
    ),
)
def test_a_higher_priority_never_unnames_a_router(rule, priority, more, hub_specs):
    def named(p):
        return bool(
            foreign_routers([payload("f", rule, p, provider="file")], **HUB, hub_routespecs=hub_specs)
        )

    if named(priority):
        assert named(priority + more)
    host_route = HOST_ROUTE_PRIORITY + 12  # a host route outranks every path-only route
    lowest = min({"/": 1, "/user/alice/": 12, "a.b/user/x/": host_route, "/hub/": 5}[s] for s in hub_specs)
    if "Host(`a.b`)" not in rule:
        assert named(priority) == (priority >= lowest)


@FAST
@given(
    status=st.sampled_from(["disabled", "enabled", "warning"]),
    provider=st.sampled_from(["internal", "file", "redis", "docker"]),
    entrypoints=st.sampled_from([["http"], ["websecure"], ["http", "websecure"], []]),
    name=st.sampled_from(["jupyterhub-user-a-0123456789abcdef", "other", "router__2F"]),
)
def test_only_enabled_foreign_routers_on_the_public_entrypoint_are_named(status, provider, entrypoints, name):
    router = payload(name, "PathPrefix(`/`)", 10, provider=provider, entrypoints=entrypoints, status=status)
    expected = (
        status != "disabled"
        and provider != "internal"
        and (not entrypoints or "http" in entrypoints)
        and not (provider == "redis" and name.startswith("jupyterhub-"))
    )
    assert bool(foreign_routers([router], **HUB)) == expected


def test_a_router_limited_to_another_host_leaves_a_pinned_hub_alone():
    def named(rule):
        return bool(
            foreign_routers([payload("f", rule, 10**6, provider="file")], **HUB, pin_host="hub.example:8000")
        )

    assert not named("Host(`other.example`) && PathPrefix(`/`)")
    assert not named("Host(`other.example`)")
    assert named("Host(`HUB.example`) && PathPrefix(`/`)")  # Traefik ignores case and port
    assert named("Host(`other.example`) && PathPrefix(`/a`) || PathPrefix(`/b`)")  # && binds first
    assert named("Host(`other.example`) || PathPrefix(`/`)")
    assert not named("Host(`other.example`) && (PathPrefix(`/a`) || PathPrefix(`/b`))")
    assert named("HostRegexp(`^other[.]example$`)")  # not read: assumed to match


def test_without_a_pinned_host_a_host_router_still_overlaps():
    assert foreign_routers([payload("f", "Host(`other.example`)", 100, provider="file")], **HUB)
