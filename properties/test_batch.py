"""Properties of coalescing add/delete requests into one change."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import (
    Changes,
    Op,
    Route,
    Settings,
    changes_for,
    decode_route,
    expectations,
    make_route,
    net_ops,
    route_name,
    traefik_rule,
)

from .strategies import FAST, routespecs

# a small pool, so ops in one batch often hit the same routespec
pools = st.lists(
    routespecs().map(lambda s: make_route(s[0], "http://127.0.0.1:1", None).routespec),
    min_size=1,
    max_size=5,
    unique=True,
)
targets = st.sampled_from(["http://127.0.0.1:8001", "http://10.0.0.2:8002", "https://u.example:443/x"])
datas = st.sampled_from([{}, {"user": "alice"}, {"n": 1, "ok": True}, {"l": [1, None, "x"]}])
settings_ = st.builds(
    Settings,
    entrypoint=st.sampled_from(["http", "websecure"]),
    namespace=st.sampled_from(["jupyterhub", "hub2"]),
    tls=st.booleans(),
)


@st.composite
def op_lists(draw, pool):
    ops = []
    for _ in range(draw(st.integers(0, 12))):
        routespec = draw(st.sampled_from(pool))
        if draw(st.booleans()):
            ops.append(Op("add", routespec, Route(routespec, draw(targets), draw(datas))))
        else:
            ops.append(Op("delete", routespec))
    return ops


@st.composite
def scenarios(draw):
    pool = draw(pools)
    return draw(settings_), draw(op_lists(pool)), draw(op_lists(pool))


def apply_batch(document, ops, settings):
    return changes_for(ops, settings).apply_to(document)


def model_routes(ops, start=None) -> dict[str, Route]:
    """What a dict of routes looks like after the ops, one at a time."""
    routes = dict(start or {})
    for op in ops:
        if op.kind == "add":
            routes[op.routespec] = op.route
        else:
            routes.pop(op.routespec, None)
    return routes


@FAST
@given(scenarios())
def test_a_batch_equals_its_ops_one_by_one(scenario):
    settings, history, ops = scenario
    start = apply_batch({}, history, settings)
    frozen = copy.deepcopy(start)

    batched = apply_batch(start, ops, settings)
    one_by_one = start
    for op in ops:
        one_by_one = apply_batch(one_by_one, [op], settings)
    assert batched == one_by_one
    assert start == frozen  # apply_to leaves the old document alone


@FAST
@given(scenarios())
def test_the_document_holds_exactly_the_model_routes(scenario):
    settings, history, ops = scenario
    document = apply_batch(apply_batch({}, history, settings), ops, settings)
    routes = model_routes(history + ops)

    names = {route_name(r, settings.namespace): route for r, route in routes.items()}
    routers = document.get("http", {}).get("routers", {})
    services = document.get("http", {}).get("services", {})
    records = document.get("jupyterhub", {}).get("routes", {})
    assert set(routers) == set(services) == set(records) == set(names)
    for name, route in names.items():
        assert routers[name]["rule"] == traefik_rule(route.routespec)
        assert routers[name]["service"] == name
        assert routers[name]["entryPoints"] == [settings.entrypoint]
        assert ("tls" in routers[name]) == settings.tls
        assert services[name]["loadBalancer"]["servers"] == [{"url": route.target}]
        assert decode_route(records[name]) == route
    # nothing but routes is left behind, not even empty sections
    assert set(document) <= {"http", "jupyterhub"}
    if not routes:
        assert document == {}


@FAST
@given(pools.flatmap(op_lists))
def test_net_ops_keeps_the_last_op_in_first_seen_order(ops):
    net = net_ops(ops)
    first_seen = list(dict.fromkeys(op.routespec for op in ops))
    assert list(net) == first_seen
    for routespec, op in net.items():
        assert op == [o for o in ops if o.routespec == routespec][-1]


@FAST
@given(settings_, pools.flatmap(op_lists))
def test_changes_are_disjoint_and_match_expectations(settings, ops):
    changes = changes_for(ops, settings)
    merged = set(changes.merge.get("http", {}).get("routers", {}))
    deleted = {path[2] for path in changes.delete}
    assert not merged & deleted
    assert set(changes.records) == merged
    assert set(changes.drop_records) == deleted
    assert bool(changes.merge or changes.delete) == bool(ops)

    live = expectations(ops, settings)
    assert {e.name for e in live} == merged
    for e in live:
        assert changes.merge["http"]["routers"][e.name]["rule"] == e.rule
        assert changes.merge["http"]["services"][e.name]["loadBalancer"]["servers"] == [{"url": e.target}]


def test_empty_changes():
    assert Changes().apply_to({"other": {"x": 1}}) == {"other": {"x": 1}}
