"""Properties of the key-value write plan (traefik_proxy.core.kv).

A plan is cut at every transaction boundary and the keys written so far are
checked as Traefik (and the Hub) would see them if the store went away there.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import (
    KeyLayout,
    Op,
    RouteTable,
    Settings,
    TxnLimits,
    api_fragment,
    changes_for,
    flatten,
    is_tree_router,
    kv_keys,
    make_route,
    plan_delete,
    plan_set,
    plan_set_steps,
    route_name,
    unflatten,
)
from traefik_proxy.core.kv import key_role, txn_bytes

from .strategies import FAST


@st.composite
def layouts(draw) -> KeyLayout:
    sep = draw(st.sampled_from(["/", ":", "."]))
    root = draw(st.sampled_from(["", f"hubs{sep}hub1{sep}"]))
    traefik, jupyterhub = draw(st.sampled_from([("traefik", "jupyterhub"), ("t", "j"), ("tr", "t-r")]))
    return KeyLayout(traefik_prefix=root + traefik, jupyterhub_prefix=root + jupyterhub, sep=sep)


limits = st.builds(TxnLimits, st.none() | st.integers(1, 40), st.none() | st.integers(1, 3000))
settings_ = st.builds(
    Settings,
    namespace=st.sampled_from(["jupyterhub", "hub2"]),
    tls=st.booleans(),
    error_middleware=st.sampled_from(["", "hub-errors"]),
    tree_depth=st.sampled_from([0, 2]),
)
# the plan does not look inside routespecs: cheap ones keep the examples many
paths = st.builds(
    lambda host, segments: host + "/" + "".join(s + "/" for s in segments),
    st.sampled_from(["", "hub.example.org"]),
    st.lists(st.sampled_from(["user", "alice", "bob", "lab", "é", "x y", "%C3%A9"]), max_size=4),
)
routes = st.lists(
    st.builds(
        make_route,
        paths,
        st.sampled_from(["http://127.0.0.1:8001", "https://u.example:443/x"]),
        st.one_of(st.just({}), st.builds(lambda s: {"s": s}, st.text(max_size=400))),
    ),
    max_size=8,
    unique_by=lambda r: r.routespec,
)


def setup_keys(layout: KeyLayout, metrics: bool) -> dict[str, str]:
    """The Hub's own config, as TKvProxy writes it with a change after an outage."""
    fragment = api_fragment(entrypoint="auth_api", username="api", hashed_password="$2y$x", metrics=metrics)
    return layout.traefik_keys(fragment)


@st.composite
def set_cases(draw):
    layout, settings = draw(layouts()), draw(settings_)
    changes = changes_for([Op("add", r.routespec, r) for r in draw(routes)], settings)
    values, _ = kv_keys(changes, layout)
    if draw(st.booleans()):
        values = {**setup_keys(layout, draw(st.booleans())), **values}
    return layout, values, draw(limits)


@st.composite
def delete_cases(draw):
    """(layout, the store before, keys to delete, limits)."""
    layout, settings = draw(layouts()), draw(settings_)
    held = draw(routes)
    gone = draw(st.lists(st.sampled_from(held), unique_by=lambda r: r.routespec)) if held else []
    store, _ = kv_keys(changes_for([Op("add", r.routespec, r) for r in held], settings), layout)
    store.update(setup_keys(layout, metrics=True))
    # the proxy knows what it holds (its route table): the tree's buckets follow
    table = RouteTable(held, tree_segment=settings.tree_segment, tree_depth=settings.tree_depth)
    deletes = changes_for([Op("delete", r.routespec) for r in gone], settings, table)
    to_set, to_delete = kv_keys(deletes, layout)
    store.update(to_set)  # a change sets first (rests moving to a new fallback), then deletes
    return layout, store, to_delete, draw(limits)


def apply_delete(store: dict[str, str], keys: list[str], sep: str) -> None:
    for key in keys:
        doomed = [k for k in store if k.startswith(key)] if key.endswith(sep) else [key]
        for k in doomed:
            store.pop(k, None)


def within(txn: list[str], values: dict[str, str], limits: TxnLimits) -> bool:
    size = sum(txn_bytes(k, values.get(k, "")) for k in txn)
    return (not limits.max_ops or len(txn) <= limits.max_ops) and (
        not limits.max_bytes or size <= limits.max_bytes
    )


def parts(layout: KeyLayout, keys) -> dict[str, dict[str, set[str]]]:
    """role -> name -> keys, for routers, services and records among ``keys``."""
    found: dict[str, dict[str, set[str]]] = {"router": {}, "service": {}, "record": {}}
    for key in keys:
        role, name = key_role(key, layout)
        if role in found:
            found[role].setdefault(name, set()).add(key)
    return found


def router_service(layout: KeyLayout, values: dict[str, str], name: str) -> str | None:
    return values.get(layout.traefik_key(("http", "routers", name, "service")))


def parents_written(layout: KeyLayout, store: dict[str, str], everything) -> None:
    """Every router in ``store`` hanging in the route tree finds its parent whole."""
    for name in parts(layout, store)["router"]:
        parent = store.get(layout.traefik_key(("http", "routers", name, "parentRefs", "0")))
        if parent is not None:
            assert everything["router"][parent] <= set(store), f"{name} before its parent {parent}"


def unit_fits(layout: KeyLayout, values: dict[str, str], name: str, limits: TxnLimits) -> bool:
    """Whether a router with its record fits one transaction (see core.kv)."""
    unit = sorted(parts(layout, values)["router"][name]) + [layout.record_key(name)]
    return within([k for k in unit if k in values], values, limits)


def assert_safe_cut(
    layout: KeyLayout, values: dict[str, str], limits: TxnLimits, store: dict[str, str]
) -> None:
    """What a store holding part of ``values`` may hold: no router before its
    service, without its record or without its parent; no record before its router."""
    everything = parts(layout, values)
    now = parts(layout, store)
    for name in now["router"]:
        service = router_service(layout, values, name)
        if service in everything["service"]:
            assert everything["service"][service] <= set(store), (name, service)
        if name in everything["record"] and unit_fits(layout, values, name, limits):
            assert name in now["record"], f"router {name} without its record"
    for name in now["record"]:
        # a record means "this route is written", whatever the limits
        assert everything["router"].get(name, set()) <= set(store), name
    parents_written(layout, store, everything)


# ---------------------------------------------------------------- set


@FAST
@given(set_cases())
def test_set_plan_writes_every_key_once_within_limits(case):
    layout, values, limits = case
    plan = plan_set(values, layout, limits)
    written = [key for txn in plan for key in txn]
    assert sorted(written) == sorted(values)
    assert all(txn for txn in plan)
    for txn in plan:
        assert txn == {k: values[k] for k in txn}
        # the one exception: a single key larger than max_bytes goes alone
        assert within(list(txn), values, limits) or len(txn) == 1
    if not limits.max_ops and not limits.max_bytes:
        assert len(plan) <= 1


@FAST
@given(set_cases())
def test_set_cut_anywhere_no_router_before_its_service_or_without_its_record(case):
    layout, values, limits = case
    store: dict[str, str] = {}
    for txn in plan_set(values, layout, limits):
        store.update(txn)
        assert_safe_cut(layout, values, limits, store)


@FAST
@given(set_cases())
def test_set_order_services_others_then_routes(case):
    layout, values, limits = case
    with_routers = set(parts(layout, values)["router"])
    rank = {"service": 0, "other": 1, "router": 2}
    seen = []
    for txn in plan_set(values, layout, limits):
        for key in txn:
            role, name = key_role(key, layout)
            seen.append(rank.get(role, 2 if name in with_routers else 3))
    assert seen == sorted(seen)


# ---------------------------------------------------------------- delete


@FAST
@given(delete_cases())
def test_delete_plan_deletes_every_key_once_within_limits(case):
    layout, _store, to_delete, limits = case
    plan = plan_delete(to_delete, layout, limits)
    assert sorted(k for txn in plan for k in txn) == sorted(to_delete)
    for txn in plan:
        assert txn and (within(txn, {}, limits) or len(txn) == 1)
    # greedy: the next key never fitted into the transaction before it
    for before, after in zip(plan, plan[1:]):
        assert not within(before + after[:1], {}, limits)


@FAST
@given(delete_cases())
def test_delete_cut_anywhere_leaves_no_router_without_its_service_or_record(case):
    layout, store, to_delete, limits = case
    everything = parts(layout, store)
    before = dict(store)
    for txn in plan_delete(to_delete, layout, limits):
        apply_delete(store, txn, layout.sep)
        now = parts(layout, store)
        for name, keys in now["router"].items():
            assert keys == everything["router"][name], f"router {name} half-deleted"
            service = router_service(layout, before, name)
            if service in everything["service"]:
                assert everything["service"][service] <= set(store), (name, service)
            if name in everything["record"]:
                assert name in now["record"], f"router {name} without its record"
        parents_written(layout, store, everything)
    expected = dict(before)
    apply_delete(expected, to_delete, layout.sep)
    assert store == expected


# ---------------------------------------------------------------- key layout


@FAST
@given(layouts(), settings_, routes)
def test_kv_keys_layout(layout, settings, added):
    changes = changes_for([Op("add", r.routespec, r) for r in added], settings)
    to_set, to_delete = kv_keys(changes, layout)
    assert to_delete == []
    names = {route_name(r.routespec, settings.namespace) for r in added}
    found = parts(layout, to_set)
    routers = {n for n in found["router"] if not is_tree_router(n)}
    assert routers == set(found["service"]) == set(found["record"]) == names
    for name in names:
        assert to_set[layout.record_key(name)] == changes.records[name]
        assert key_role(layout.record_key(name), layout) == ("record", name)
    head = layout.traefik_prefix + layout.sep
    traefik = {k[len(head) :]: v for k, v in to_set.items() if k.startswith(head)}
    assert len(traefik) + len(names) == len(to_set)
    # the same config as Traefik reads it, under the prefix
    assert unflatten(traefik, layout.sep) == unflatten(flatten(changes.merge))
    deletes = changes_for([Op("delete", r.routespec) for r in added], settings)
    _, to_delete = kv_keys(deletes, layout)
    records = [layout.record_key(n) for n in names]
    assert sorted(k for k in to_delete if not k.endswith(layout.sep)) == sorted(records)
    subtrees = [k for k in to_delete if k.endswith(layout.sep)]
    assert {key_role(k, layout) for k in subtrees} == {
        (role, n) for n in names for role in ("router", "service")
    }


# ---------------------------------------------------------------- steps


@FAST
@given(set_cases(), st.data())
def test_set_steps_any_interleaving_within_a_step_is_a_safe_cut(case, data):
    """The transactions of a step go out at once and land in any order: after
    the steps before, any subset of a step's transactions is a cut where no
    router lacks its service, its record or its parent."""
    layout, values, limits = case
    steps = plan_set_steps(values, layout, limits)
    assert [txn for step in steps for txn in step] == plan_set(values, layout, limits)
    done: dict[str, str] = {}
    for step in steps:
        landed = data.draw(st.permutations(step))[: data.draw(st.integers(0, len(step)))]
        store = dict(done)
        for txn in landed:
            store.update(txn)
        assert_safe_cut(layout, values, limits, store)
        for txn in step:
            done.update(txn)


def test_set_steps_of_a_large_batch_are_few():
    """10,000 routes in transactions of 128 operations: hundreds of
    transactions, but a handful of steps (services; routes)."""
    layout = KeyLayout()
    settings = Settings(tree_segment=1, tree_depth=2)
    ops = [Op("add", "/", make_route("/", "http://h:1", {"hub": True}))]
    ops += [
        Op("add", f"/user/u{i}/", make_route(f"/user/u{i}/", f"http://h:{i + 2}", {})) for i in range(10_000)
    ]
    to_set, _ = kv_keys(changes_for(ops, settings), layout)
    steps = plan_set_steps(to_set, layout, TxnLimits(max_ops=128, max_bytes=1_000_000))
    assert sum(len(step) for step in steps) > 300
    assert len(steps) <= 20
    assert max(len(step) for step in steps) > 250


def test_set_steps_keep_buckets_and_split_units_in_order():
    """Small transactions: a bucket's routers (no record) and the pieces of a
    route too large for one transaction each keep a step of their own, before
    the route's own transaction."""
    layout = KeyLayout()
    settings = Settings(tree_segment=1, tree_depth=2)
    ops = [
        Op("add", spec, make_route(spec, "http://h:1", {"hub": spec == "/"}))
        for spec in ("/", "/user/alice/", "/user/alan/", "/user/bob/")
    ]
    to_set, _ = kv_keys(changes_for(ops, settings), layout)
    steps = plan_set_steps(to_set, layout, TxnLimits(max_ops=3, max_bytes=None))
    step_of = {key: i for i, step in enumerate(steps) for txn in step for key in txn}
    for name, keys in parts(layout, to_set)["router"].items():
        parent = to_set.get(layout.traefik_key(("http", "routers", name, "parentRefs", "0")))
        if parent is not None:
            parent_keys = parts(layout, to_set)["router"][parent]
            assert min(step_of[k] for k in keys) > max(step_of[k] for k in parent_keys), (name, parent)
        if is_tree_router(name) or len(keys) + 1 > 3:  # split: its pieces in order
            assert len({step_of[k] for k in keys}) == len({id(t) for s in steps for t in s if set(t) & keys})


def test_a_router_of_others_named_like_a_tree_router_is_planned_as_others():
    """A router of extra_dynamic_config whose name merely holds the tree's mark
    ("my--tree-x") is an ordinary router: planning a write with it works (the
    tree-level sort used to fail on it, so every write at start failed)."""
    layout = KeyLayout()
    for name in ("my--tree-x", "a--tree-", "x--tree-h-1"):
        assert not is_tree_router(name)
        to_set = {f"traefik/http/routers/{name}/rule": "PathPrefix(`/x`)"}
        assert sum(len(step) for step in plan_set_steps(to_set, layout, TxnLimits(max_ops=2))) == 1
        assert plan_delete([f"traefik/http/routers/{name}/"], layout, TxnLimits(max_ops=2))
    assert is_tree_router("jupyterhub--tree-2-ab12cd") and is_tree_router("hub--tree-1h-ab12cd-rest")
