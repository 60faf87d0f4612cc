"""Properties of the adaptive route tree (``Settings.tree_bucket_size`` > 0).

The routing model and reference are :mod:`.test_route_tree`'s (which also
runs its own properties with adaptive settings). Here: the layout is a
function of the route set alone, whatever the order of the batches that made
it; buckets stay small for any names; one add or delete moves at most a
bucket's worth of routes; and a key-value store cut between any two of a
batch's transactions still serves every route the batch leaves alone.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from traefik_proxy.core import (
    Changes,
    KeyLayout,
    Op,
    RouteTable,
    Settings,
    TxnLimits,
    changes_for,
    final_routes,
    kv_keys,
    plan_batch,
    plan_delete,
    plan_set,
    relayout,
    route_key,
    route_name,
    unflatten,
)

from .strategies import FAST
from .test_kv_plan import apply_delete
from .test_route_tree import route_for, run_batches, serve

# names built from few characters share long prefixes: splits, merges and
# common prefixes that grow and shrink
names = st.text(alphabet="ab0", min_size=1, max_size=5)
path_specs = st.builds(lambda n, tail: f"/user/{n}/" + tail, names, st.sampled_from(["", "lab/"]))
host_specs = st.builds(lambda n, tail: f"{n}.hub.x/" + tail, names, st.sampled_from(["", "lab/"]))
adaptive = st.builds(
    Settings,
    tree_segment=st.just(1),
    tree_depth=st.integers(1, 2),
    tree_bucket_size=st.integers(1, 4),
    error_middleware=st.sampled_from(["", "errors"]),
)
batches = st.lists(
    st.lists(st.tuples(st.booleans(), path_specs | host_specs | st.just("/")), min_size=1, max_size=5),
    min_size=1,
    max_size=8,
)
NO_CHANGE = Changes(merge={}, delete=[], records={}, drop_records=[])


def fresh(settings: Settings, held) -> RouteTable:
    return RouteTable(
        [route_for(r) for r in held],
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
        bucket_size=settings.tree_bucket_size,
    )


# a split: ab, alone on its character in bucket a, moves into a new bucket ab
SPLIT = [[(True, "/user/ab/"), (True, "/user/a0/")], [(True, "/user/abb/")]]


@FAST
@given(adaptive, batches)
@example(Settings(tree_depth=2, tree_bucket_size=1), SPLIT)
@example(Settings(tree_depth=2, tree_bucket_size=1), [*SPLIT, [(False, "/user/abb/")]])  # merge
@example(  # a name equal to its bucket's prefix splits the bucket, its own chain unchanged
    Settings(tree_segment=0, tree_depth=1, tree_bucket_size=2),
    [[(True, "/al/"), (True, "/alice/")], [(True, "/a/")]],
)
def test_the_layout_is_a_function_of_the_route_set(settings, batches):
    """Batches in any order end in the layout of their route set: the same
    buckets, parents and routes' buckets as a table built from scratch, and a
    store a relayout at start finds nothing to change in."""
    document, held, table = run_batches(settings, batches)
    again = fresh(settings, held)
    assert table.parents == again.parents
    assert {r: table.hangs_in(r) for r in held} == {r: again.hangs_in(r) for r in held}
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    assert relayout(records, document, settings)[0] == NO_CHANGE


@FAST
@given(adaptive, st.lists(path_specs | host_specs, min_size=1, max_size=40, unique=True))
def test_no_bucket_holds_more_than_its_size_or_one_route_per_character(settings, held):
    """A bucket that did not split holds at most ``tree_bucket_size`` names; one that
    split holds at most one name per next character, and a name equal to its
    prefix. Path routes by user name, host routes by first label, each in
    their own space (a host bucket never holds a path route, nor the reverse)."""
    table = fresh(settings, held)
    keys = {route_key(r, settings.tree_segment) for r in held}
    spaces: dict = {}
    for key in keys:
        if key is not None:
            spaces.setdefault((key[0], key[1]), []).append(key[3])
    inside: dict = {}
    for routespec in held:
        key = route_key(routespec, settings.tree_segment)
        bucket = table.hangs_in(routespec)
        if key is not None:
            assert bucket is not None and key[3].startswith(bucket.prefix), routespec
            assert (bucket.host, bucket.domain) == (key[0], key[1]), routespec
            inside.setdefault(bucket, set()).add(key[3])
    children = {}
    for bucket, parent in table.parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(bucket)
    for bucket, own in inside.items():
        under = [k for k in spaces[(bucket.host, bucket.domain)] if k.startswith(bucket.prefix)]
        if len(under) > settings.tree_bucket_size:  # split
            after = [k[len(bucket.prefix)] for k in own if k != bucket.prefix]
            assert len(after) == len(set(after)), (bucket, own)
        else:
            assert own == set(under) and bucket not in children, (bucket, own)
        # a name in a sub-bucket is never also in the bucket above
        assert not any(k.startswith(c.prefix) for k in own for c in children.get(bucket, []))


@FAST
@given(
    adaptive,
    st.lists(names, min_size=1, max_size=40, unique=True),
    names,
    st.booleans(),
    st.sampled_from(["/user/{}/", "{}.hub.x/"]),
)
@example(  # a 5th sequential name splits u000 (4 names) into parts of one name each
    Settings(tree_depth=2, tree_bucket_size=4),
    ["u0001", "u0002", "u0003", "u0004"],
    "u0005",
    True,
    "/user/{}/",
)
def test_one_add_or_delete_moves_at_most_a_bucket_of_routes(settings, held, name, add, form):
    """Steady state: one route more or less moves at most ``tree_bucket_size`` + 1
    other routes (a split or a merge), each into a bucket under its own or out
    into one above it. By path and by host (``form``) alike."""
    before = fresh(settings, [form.format(n) for n in held])
    routespec = form.format(name)
    after = before.after([(routespec, route_for(routespec) if add else None)])
    moved = after.moved(before)
    assert len(moved) <= settings.tree_bucket_size + 1, moved
    assert after.moves_are_nested(before)
    assert routespec not in {r for r, _ in moved}
    # the routes that moved are exactly those whose bucket differs
    changed = {r for r in before.routes if r in after.routes and before.hangs_in(r) != after.hangs_in(r)}
    assert {r for r, _ in moved} == changed
    # and the change writes just their parentRefs
    ops = [Op("add", routespec, route_for(routespec)) if add else Op("delete", routespec)]
    routers = (changes_for(ops, settings, before).merge.get("http") or {}).get("routers") or {}
    for moved_spec, bucket in moved:
        assert set(routers[route_name(moved_spec, settings.namespace)]) == {"parentRefs"}
        old = before.hangs_in(moved_spec).prefix
        assert bucket.prefix.startswith(old) or old.startswith(bucket.prefix), (old, bucket)


def test_sequential_names_split_into_small_buckets():
    """10,000 names u00000...u09999 with buckets of 32: no bucket holds more than
    32 names, and a request passes 5 levels (u, u0, u0X, u0XX, u0XXX)."""
    settings = Settings(tree_depth=2, tree_bucket_size=32)
    table = fresh(settings, [f"/user/u{i:05d}/" for i in range(10_000)])
    sizes: dict = {}
    for routespec in table.routes:
        sizes[table.hangs_in(routespec)] = sizes.get(table.hangs_in(routespec), 0) + 1
    assert max(sizes.values()) <= 32
    assert max(len(table.chain(r)) for r in table.routes) == 5
    # the fixed tree put them all in one bucket
    fixed = fresh(Settings(tree_depth=2), [f"/user/u{i:05d}/" for i in range(10_000)])
    assert len({fixed.hangs_in(r) for r in fixed.routes}) == 1


def _served_as_before(store: dict[str, str], layout: KeyLayout, settings: Settings, kept) -> None:
    document = unflatten(store, layout.sep).get(layout.traefik_prefix) or {}
    for routespec in kept:
        host, _, path = routespec.partition("/")
        want = route_name(routespec, settings.namespace)
        # under the route's own path no other route is a longer prefix
        assert serve(document, host or "hub.x", "/" + path + "x") == want, routespec


@FAST
@given(
    adaptive,
    batches,
    st.lists(st.tuples(st.booleans(), path_specs | host_specs), min_size=1, max_size=5),
    st.integers(1, 12),
)
@example(Settings(tree_depth=2, tree_bucket_size=1), SPLIT[:1], [(True, "/user/abb/")], 1)
@example(Settings(tree_depth=2, tree_bucket_size=1), SPLIT, [(False, "/user/abb/")], 1)
@example(  # b goes while bb0 comes (a layout of shared starts would move bb00 sideways)
    Settings(tree_depth=1, tree_bucket_size=1),
    [[(True, "/user/b/"), (True, "/user/bb/"), (True, "/user/bb00/")]],
    [(False, "/user/b/"), (True, "/user/bb0/")],
    1,
)
@example(  # a split moves a user's two routes: the shorter first, or it would
    # shadow the longer left in the bucket above
    Settings(tree_depth=1, tree_bucket_size=1),
    [[(True, "/user/ab/"), (True, "/user/ab/lab/"), (True, "/user/a0/")]],
    [(True, "/user/abb/")],
    1,
)
@example(  # host routes alike
    Settings(tree_depth=1, tree_bucket_size=1),
    [[(True, "ab.hub.x/"), (True, "ab.hub.x/lab/"), (True, "a0.hub.x/"), (True, "/")]],
    [(True, "abb.hub.x/")],
    1,
)
@example(  # and a merge the longer first
    Settings(tree_depth=1, tree_bucket_size=1),
    [[(True, "/user/ab/"), (True, "/user/ab/lab/"), (True, "/user/a0/"), (True, "/user/abb/")]],
    [(False, "/user/abb/")],
    1,
)
def test_every_cut_of_a_kv_write_serves_the_routes_it_leaves_alone(settings, batches, last, max_ops):
    """A store cut between any two transactions of a batch (splits, merges and
    moved buckets included, in the order the KV plan sends them) serves every
    route held before and after the batch as before, by path and by host:
    every move of any batch is nested (into a bucket below, or out into one
    above)."""
    layout = KeyLayout()
    limits = TxnLimits(max_ops=max_ops)
    document, held, table = run_batches(settings, batches)
    store = layout.traefik_keys({k: v for k, v in document.items() if k != "jupyterhub"})
    ops = [Op("add", r, route_for(r)) if add else Op("delete", r) for add, r in last]
    changes, after_table = plan_batch(ops, settings, table)
    assert after_table.moves_are_nested(table)
    to_set, to_delete = kv_keys(changes, layout)
    after = set(held)
    for routespec, route in final_routes(ops):
        (after.add if route else after.discard)(routespec)
    kept = {r for r in held & after if r != "/"}
    for txn in plan_set({k: v for k, v in to_set.items() if k.startswith("traefik")}, layout, limits):
        store.update(txn)
        _served_as_before(store, layout, settings, kept)
    for txn in plan_delete([k for k in to_delete if k.startswith("traefik")], layout, limits):
        apply_delete(store, txn, layout.sep)
        _served_as_before(store, layout, settings, kept)
