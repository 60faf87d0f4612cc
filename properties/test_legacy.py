"""Taking over from jupyterhub-traefik-proxy: properties and its exact layouts.

The literal layouts (tests/legacy_layouts.py) are the ones jupyterhub-traefik-proxy
2.1.0 writes: key-value stores from its ``kv_proxy.py``/``proxy.py``/``traefik_utils.py``,
files from its ``fileprovider.py`` (TOML by the ``toml`` package, YAML by
``ruamel.yaml``). The builders below write the same layout for any routes; an
example test pins them to the literals, and the properties use them.
"""

from __future__ import annotations

import string
import tomllib

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.legacy_layouts import (
    LEGACY_KV,
    LEGACY_KV_ROUTES,
    LEGACY_KV_SETUP,
    LEGACY_ROUTES,
    LEGACY_TOML,
    LEGACY_YAML,
    legacy_kv_writes,
)
from traefik_proxy.core import (
    InvalidRecord,
    Migration,
    Op,
    Route,
    Settings,
    changes_for,
    decode_route,
    deep_merge,
    encode_route,
    flatten,
    legacy_alias,
    legacy_routespec,
    legacy_rule,
    make_route,
    normalize_routespec,
    plan_file_migration,
    plan_kv_migration,
    route_fragment,
    route_name,
    unflatten,
)

from .strategies import FAST, SLOW, routespecs

# ---------------------------------------------------------------- the old layout, for any routes

OLD_HASH = LEGACY_KV_SETUP["traefik/http/middlewares/auth_api/basicAuth/users/0"]
OLD_SETUP = {
    "http": {
        "routers": {
            "route_api": {
                "rule": "Host(`localhost`) && PathPrefix(`/api`)",
                "entryPoints": ["auth_api"],
                "service": "api@internal",
                "middlewares": ["auth_api"],
            }
        },
        "middlewares": {"auth_api": {"basicAuth": {"users": [OLD_HASH]}}},
    }
}


def apply_flat_diff(flat, to_set, to_delete, sep="/"):
    """What a key-value store does with one write: delete keys (a key ending
    in ``sep`` is a subtree), then set keys. A model of the store, for the test."""
    result = dict(flat)
    for key in to_delete:
        if key.endswith(sep):
            for existing in [k for k in result if k.startswith(key)]:
                del result[existing]
        else:
            result.pop(key, None)
    result.update(to_set)
    return result


def old_route(routespec: str, target: str, data: dict) -> tuple[dict, dict]:
    """(Traefik config, record table) the old add_route wrote for one route."""
    router, service = legacy_alias(routespec, "router"), legacy_alias(routespec, "service")
    traefik = {
        "http": {
            "routers": {
                router: {"service": service, "rule": legacy_rule(routespec), "entryPoints": ["http"]}
            },
            "services": {service: {"loadBalancer": {"servers": [{"url": target}], "passHostHeader": True}}},
        }
    }
    record = {"data": data, "routespec": routespec, "target": target, "router": router, "service": service}
    return traefik, {router: record}


def old_kv(routes, tp: str = "traefik", jp: str = "jupyterhub", setup: bool = True) -> dict[str, str]:
    flat = flatten(OLD_SETUP, "/", tp) if setup else {}
    for routespec, target, data in routes:
        traefik, record = old_route(routespec, target, data)
        flat |= flatten(traefik, "/", tp) | flatten({"routes": record}, "/", jp)
    return flat


def old_document(routes, setup: bool = True) -> dict:
    document = dict(OLD_SETUP) if setup else {}
    for routespec, target, data in routes:
        traefik, record = old_route(routespec, target, data)
        document = deep_merge(document, {**traefik, "jupyterhub": {"routes": record}})
    return document


# ---------------------------------------------------------------- our layout, and applying a plan

SETTINGS = Settings()


def our_kv(routes: list[Route], tp: str, jp: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for route in routes:
        flat |= flatten(route_fragment(route, SETTINGS), "/", tp)
        flat[f"{jp}/routes/{route_name(route.routespec)}"] = encode_route(route)
    return flat


def apply_kv(flat: dict[str, str], plan: Migration, tp: str, jp: str) -> dict[str, str]:
    """The plan carried out on a flat store, as TKvProxy._keys_for writes Changes."""
    additions = plan.additions(SETTINGS)
    to_set = flatten(additions.merge, "/", tp) if additions.merge else {}
    to_set |= {f"{jp}/routes/{name}": record for name, record in additions.records.items()}
    after = apply_flat_diff(flat, to_set, [])
    return apply_flat_diff(after, {}, plan.kv_removal_keys(tp, jp))


def apply_file(document: dict, plan: Migration) -> dict:
    return plan.removals().apply_to(plan.additions(SETTINGS).apply_to(document))


def valid(routespec, target, data) -> Route | None:
    try:
        return make_route(routespec, target, data)
    except ValueError:
        return None


# ---------------------------------------------------------------- strategies

letters = st.text(string.ascii_letters, min_size=1, max_size=6)
leaves = st.text(max_size=8) | st.integers(-5, 10**6) | st.booleans()
datas = st.dictionaries(
    letters,
    leaves | st.lists(st.text(max_size=5), max_size=3) | st.dictionaries(letters, leaves, max_size=3),
    max_size=4,
)
good_routespecs = routespecs().map(lambda s: normalize_routespec(s[0]))
# what an old record may hold that we refuse: hostile paths, odd hosts, bad targets
bad_routespecs = st.sampled_from(
    ["//", "/a/../", "/`x`/", "/(a)/", "bad host/x/", "/%zz/", "/a%00/", "/\x0f/"]
)
targets = st.sampled_from(["http://127.0.0.1:9001", "https://10.0.0.2:443/x", "http://h.example"])
bad_targets = st.sampled_from(["ftp://127.0.0.1:21", "", "http://user:pw@h.example", "no url"])
PREFIXES = st.sampled_from([("traefik", "jupyterhub"), ("hubs/a/traefik", "hubs/a/jupyterhub")])


@st.composite
def scenarios(draw):
    """Old routes (some invalid), our routes (some sharing a routespec), foreign keys."""
    specs = draw(st.lists(good_routespecs | bad_routespecs, min_size=0, max_size=6, unique=True))
    old = [
        (s, draw(targets | bad_targets) if draw(st.booleans()) else draw(targets), draw(datas)) for s in specs
    ]
    ours_specs = draw(st.lists(good_routespecs, max_size=3, unique=True))
    shared = [s for s, t, d in old if valid(s, t, d)][: draw(st.integers(0, 2))]
    ours = [Route(s, "http://127.0.0.1:7000", {"ours": True}) for s in dict.fromkeys(ours_specs + shared)]
    return old, ours, draw(PREFIXES), draw(st.booleans())


def foreign_kv(tp: str, jp: str) -> dict[str, str]:
    """Keys of other prefixes and other tools, including names that look old."""
    return {
        "other/http/routers/router__2F/rule": "PathPrefix(`/`)",
        f"{jp}/settings/x": "kept",
        f"{tp}/http/routers/foreign-site/rule": "PathPrefix(`/site`)",
        f"{tp}/http/routers/foreign-site/service": "service__2Fsite_2F",
        f"{tp}/http/services/service__2Fsite_2F/loadBalancer/servers/0/url": "http://127.0.0.1:1",
        f"{tp}/http/routers/router__2Fx_2F/rule": "Host(`x.example`)",
        f"{tp}/http/routers/router__2Fx_2F/service": "foreign@file",
        f"{tp}/tls/stores/default/defaultCertificate/certFile": "/etc/cert.pem",
    }


# ---------------------------------------------------------------- properties


def expected_routes(old, ours, as_found):
    """Routespec → the route the plan must write (old routes ours does not have)."""
    taken = {r.routespec for r in ours}
    expected = {}
    for routespec, target, data in old:
        route = valid(routespec, target, as_found(data))
        if route and route.routespec not in taken:
            expected[route.routespec] = route
    return expected


def kv_as_found(data: dict) -> dict:
    # what the old proxy returned from a key-value store: strings, as stored
    return unflatten(flatten(data, "/"), "/")


@FAST
@given(scenarios())
def test_kv_migration_keeps_routes_removes_old_keys_and_nothing_else(scenario):
    old, ours, (tp, jp), setup = scenario
    before_old = old_kv(old, tp, jp, setup)
    kept = our_kv(ours, tp, jp) | foreign_kv(tp, jp)
    store = before_old | kept
    plan = plan_kv_migration(store, traefik_prefix=tp, jupyterhub_prefix=jp)
    after = apply_kv(store, plan, tp, jp)

    assert not set(before_old) & set(after), "an old key survived"
    assert all(after.get(k) == v for k, v in kept.items()), "a key of ours or of others changed"
    expected = expected_routes(old, ours, kv_as_found)
    migrated = {r.routespec: r for r in plan.routes}
    assert migrated == expected
    for route in expected.values():
        assert decode_route(after[f"{jp}/routes/{route_name(route.routespec)}"]) == route
        assert flatten(route_fragment(route, SETTINGS), "/", tp).items() <= after.items()
    assert {i.name for i in plan.invalid} == {
        legacy_alias(s, "router") for s, t, d in old if not valid(s, t, kv_as_found(d))
    }
    assert plan_kv_migration(after, traefik_prefix=tp, jupyterhub_prefix=jp) == Migration()


@FAST
@given(scenarios())
def test_file_migration_keeps_routes_removes_old_tables_and_nothing_else(scenario):
    old, ours, _, setup = scenario
    document = old_document(old, setup)
    document = changes_for([Op("add", r.routespec, r) for r in ours], SETTINGS).apply_to(document)
    document["tcp"] = {"routers": {"router__2F": {"rule": "HostSNI(`*`)"}}}
    plan = plan_file_migration(document)
    after = apply_file(document, plan)

    routers = after.get("http", {}).get("routers", {})
    assert not [n for n in routers if n.startswith(("router_", "route_api"))]
    assert not [n for n in after.get("http", {}).get("services", {}) if n.startswith("service_")]
    assert "middlewares" not in after.get("http", {})
    records = after.get("jupyterhub", {}).get("routes", {})
    assert all(isinstance(record, str) for record in records.values())
    assert after["tcp"] == document["tcp"]
    expected = expected_routes(old, ours, lambda data: data)
    assert {r.routespec: r for r in plan.routes} == expected
    for route in ours:
        assert decode_route(records[route_name(route.routespec)]) == route
    for route in expected.values():
        assert decode_route(records[route_name(route.routespec)]) == route
    assert plan_file_migration(after) == Migration()


@FAST
@given(st.lists(good_routespecs, max_size=4, unique=True), PREFIXES)
def test_our_layout_alone_plans_nothing(specs, prefixes):
    tp, jp = prefixes
    ours = [Route(s, "http://127.0.0.1:7000", {"n": 1}) for s in specs]
    assert (
        plan_kv_migration(our_kv(ours, tp, jp) | foreign_kv(tp, jp), traefik_prefix=tp, jupyterhub_prefix=jp)
        == Migration()
    )


@SLOW
@given(st.text(st.characters(min_codepoint=0x10, exclude_categories=("Cs",)), max_size=20))
def test_legacy_names_round_trip(text):
    routespec = text + "/"
    for kind in ("router", "service"):
        alias = legacy_alias(routespec, kind)
        assert set(alias[len(kind) + 1 :]) <= set(string.ascii_letters + string.digits + "-_")
        assert legacy_routespec(alias, kind) == routespec


@pytest.mark.parametrize(
    "name",
    [
        "router_",
        "router__2f",
        "router__2Fa",
        "router__9_2F",
        "router__C3_2F",
        "service__2F",
        "route_api",
        "jupyterhub-root-0123",
    ],
)
def test_names_that_only_look_old_are_not_claimed(name):
    assert legacy_routespec(name, "router") is None


# ---------------------------------------------------------------- the exact 2.1.0 layouts


def test_builders_write_exactly_what_jupyterhub_traefik_proxy_2_1_0_writes():
    assert old_kv(LEGACY_ROUTES) == LEGACY_KV
    assert old_document(LEGACY_ROUTES) == tomllib.loads(LEGACY_TOML) == yaml.safe_load(LEGACY_YAML)
    # one write per route, as its add_route made them
    for routespec, target, data in LEGACY_ROUTES:
        assert LEGACY_KV_ROUTES[routespec] == old_kv([(routespec, target, data)], setup=False)


LEGACY_AS_OURS = {
    # data from a key-value store: the strings it holds, as the old proxy returned them
    "kv": [
        Route("/", "http://127.0.0.1:8081", {"hub": "true"}),
        Route("/user/%C3%A9lise_x.y/", "http://127.0.0.1:9003", {}),
        Route("/user/alice/", "http://127.0.0.1:9001", {"server_name": "", "user": "alice"}),
        Route(
            "hub.example.org/user/bob/",
            "http://10.0.0.2:9002",
            {"d": {"x": "y"}, "l": ["a", "b"], "n": "3", "user": "bob"},
        ),
    ],
    # data from a file: its TOML/YAML types
    "file": [
        Route("/", "http://127.0.0.1:8081", {"hub": True}),
        Route("/user/%C3%A9lise_x.y/", "http://127.0.0.1:9003", {}),
        Route("/user/alice/", "http://127.0.0.1:9001", {"server_name": "", "user": "alice"}),
        Route(
            "hub.example.org/user/bob/",
            "http://10.0.0.2:9002",
            {"d": {"x": "y"}, "l": ["a", "b"], "n": 3, "user": "bob"},
        ),
    ],
}
LEGACY_COUNTS = {
    "routes": 4,
    "superseded": 0,
    "invalid": 0,
    "records": 4,
    "routers": 5,
    "services": 4,
    "middlewares": 1,
}


@pytest.mark.parametrize("prefixes", [("traefik", "jupyterhub"), ("hubs/a/traefik", "hubs/a/jupyterhub")])
def test_the_2_1_0_kv_layout_is_migrated_whole(prefixes):
    tp, jp = prefixes
    store = {
        k: v for write in legacy_kv_writes(traefik_prefix=tp, jupyterhub_prefix=jp) for k, v in write.items()
    }
    plan = plan_kv_migration(store, traefik_prefix=tp, jupyterhub_prefix=jp)
    assert list(plan.routes) == LEGACY_AS_OURS["kv"]
    assert plan.counts() == LEGACY_COUNTS
    assert "route_api" in plan.routers and plan.middlewares == ("auth_api",)
    after = apply_kv(store, plan, tp, jp)
    assert not set(store) & set(after)
    assert {key.rsplit("/", 1)[1] for key in after if key.startswith(f"{jp}/routes/")} == {
        route_name(r.routespec) for r in plan.routes
    }
    assert plan_kv_migration(after, traefik_prefix=tp, jupyterhub_prefix=jp) == Migration()
    lines = plan.summary()
    assert set(lines) == {"routes", "records", "routers", "services", "middlewares"}
    assert all(line.startswith("Taking over from jupyterhub-traefik-proxy: ") for line in lines.values())
    assert OLD_HASH.split(":")[1] not in " ".join(lines.values())


@pytest.mark.parametrize("text, parse", [(LEGACY_TOML, tomllib.loads), (LEGACY_YAML, yaml.safe_load)])
def test_the_2_1_0_file_layout_is_migrated_whole(text, parse):
    document = parse(text)
    plan = plan_file_migration(document)
    assert list(plan.routes) == LEGACY_AS_OURS["file"]
    assert plan.counts() == LEGACY_COUNTS
    after = apply_file(document, plan)
    assert set(after) == {"http", "jupyterhub"}
    assert set(after["http"]) == {"routers", "services"}
    assert sorted(after["jupyterhub"]["routes"]) == sorted(route_name(r.routespec) for r in plan.routes)
    assert plan_file_migration(after) == Migration()


def test_a_route_recorded_by_both_keeps_ours():
    ours = Route("/user/alice/", "http://127.0.0.1:7777", {"user": "alice"})
    store = LEGACY_KV | our_kv([ours], "traefik", "jupyterhub")
    plan = plan_kv_migration(store)
    assert plan.superseded == ("/user/alice/",)
    assert "/user/alice/" not in {r.routespec for r in plan.routes}
    assert plan.summary()["superseded"].endswith("for 1 routespec: /user/alice/")
    after = apply_kv(store, plan, "traefik", "jupyterhub")
    assert decode_route(after[f"jupyterhub/routes/{route_name('/user/alice/')}"]) == ours
    assert "router__2Fuser_2Falice_2F" in plan.routers  # the old router goes all the same


def test_routers_and_services_left_without_a_record_are_found_by_their_rule():
    # the old Redis delete was not atomic: a killed Hub can leave a router without its record
    store = {
        k: v for k, v in LEGACY_KV.items() if not k.startswith("jupyterhub/routes/router__2Fuser_2Falice_2F/")
    }
    plan = plan_kv_migration(store)
    assert "router__2Fuser_2Falice_2F" in plan.routers
    assert "service__2Fuser_2Falice_2F" in plan.services
    assert "/user/alice/" not in {r.routespec for r in plan.routes}


def test_look_alikes_of_other_tools_stay():
    store = {
        "traefik/http/routers/router__2Fx_2F/rule": "PathPrefix(`/x/`)",  # not the old rule
        "traefik/http/routers/router__2Fx_2F/service": "service__2Fx_2F",
        "traefik/http/services/service__2Fx_2F/loadBalancer/servers/0/url": "http://127.0.0.1:1",
        "traefik/http/routers/route_api/rule": "PathPrefix(`/api`)",
        "traefik/http/routers/route_api/service": "my-api",  # not Traefik's API
        "traefik/http/routers/route_api/middlewares/0": "auth_api",
        "traefik/http/middlewares/auth_api/basicAuth/users/0": "someone:hash",  # used by it
    }
    assert plan_kv_migration(store) == Migration()


def test_the_api_router_and_its_auth_alone_are_removed():
    # an old Hub that started and never added a route
    plan = plan_kv_migration(LEGACY_KV_SETUP)
    assert (plan.routers, plan.middlewares, plan.routes) == (("route_api",), ("auth_api",), ())


def test_records_that_make_no_route_are_reported_and_removed():
    bad = [("/a/../", "http://127.0.0.1:1", {}), ("/ok/", "ftp://127.0.0.1:21", {"user": "x"})]
    store = LEGACY_KV | old_kv(bad, setup=False)
    plan = plan_kv_migration(store)
    assert [i.name for i in plan.invalid] == ["router__2Fa_2F_2E_2E_2F", "router__2Fok_2F"]
    assert "not an http(s) URL" in plan.invalid[1].reason
    assert {"router__2Fa_2F_2E_2E_2F", "router__2Fok_2F"} <= set(plan.routers)
    assert {"router__2Fa_2F_2E_2E_2F", "router__2Fok_2F"} <= set(plan.records)
    assert "invalid" in plan.summary() and "router__2Fok_2F" in plan.summary()["invalid"]
    assert not set(store) & set(apply_kv(store, plan, "traefik", "jupyterhub"))
    assert isinstance(plan.invalid[0], InvalidRecord)
