"""Properties of the shards (traefik_proxy.core.shards).

User routes live in K shard Traefiks, chosen by the leaf bucket of the route
tree; the front Traefik holds the replicated routes and the *front tree*,
whose buckets send requests to their shards. Which routes are sharded follows
the Hub's routing mode (``host_routing``, JupyterHub's ``subdomain_host``):

- by path (host_routing False): the routes with a bucket chain are sharded,
  flat ones are replicated (the front and every shard hold them), and a host
  route is refused (:class:`HostRouteWithoutHostRouting`);
- by host (host_routing True): the host routes with a chain are sharded and
  every path-only route, bucketed or not, is replicated, so that every
  shard's host buckets hold a copy of it (see :mod:`traefik_proxy.core.routing`).

Here:

- which shard a bucket and a route belong to (:func:`shard_of`,
  :func:`route_shard`), in both modes, and the refusal of host routes
  without host routing (by :func:`route_shard` and :func:`misplaced`);
- the front tree's routers, one by one (:func:`front_tree`);
- requests routed as the Hub's Traefiks would: first the front's config (its
  replicated routes, written by ``changes_for``, the front tree over the leaf
  buckets of the sharded routes and of some deleted ones, and the shard
  services), then, when the front answers with a shard's service, that
  shard's config (its sharded routes and every replicated route, written by
  ``changes_for`` as any proxy's), both through the layered-routing model of
  ``test_route_tree.serve``; they must reach what one Traefik holding every
  route reaches;
- the moves that put stored routes where K and the mode say (:func:`misplaced`);
- :func:`with_parents`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from traefik_proxy.core import (
    TREE_MARK,
    Bucket,
    HostRouteWithoutHostRouting,
    Op,
    Route,
    RouteTable,
    Settings,
    bucket_chain,
    bucket_name,
    changes_for,
    deep_merge,
    front_layout,
    front_namespace,
    front_services,
    front_tree,
    front_tree_steps,
    leaf_bucket,
    make_route,
    misplaced,
    normalize_routespec,
    relayout,
    resharded,
    rest_name,
    route_name,
    route_shard,
    shard_of,
    shard_service_name,
    split_routespec,
    tree_level,
    with_parents,
)

from .rule_model import matches
from .strategies import FAST
from .strategies import hosts as any_hosts
from .strategies import routespecs as any_routespecs
from .test_route_tree import (
    ENTRYPOINT,
    Tie,
    host_routespecs,
    longest_prefix,
    request_hosts,
    requests,
    route_for,
    routespecs,
    segment,
    serve,
)

# ------------------------------------------------------------------ strategies

#: the routes a Hub has beside its users' (flat with tree_segment 1)
flat_routespecs = st.sampled_from(["/", "/hub/", "/user/"])
#: user routes under the directories tree_segment 0, 1 and 2 bucket the names of
user_routespecs = st.builds(
    lambda directory, name, rest: directory + name + "/" + rest,
    st.sampled_from(["/", "/user/", "/t/user/"]),
    segment,
    st.sampled_from(["", "lab/"]),
)
#: small alphabets (test_route_tree's), so that routes share buckets
path_routespecs = routespecs | user_routespecs | flat_routespecs
#: the Hub's and services' path-only routes that are bucketed with tree_segment 1
hub_path_routespecs = st.sampled_from(
    ["/services/x/", "/services/announce/", "/user/alice/", "/user/a/", "/user/al/lab/"]
)
#: any accepted routespec (unicode, percent-encoding, hosts with ports), normalized
rich_routespecs = any_routespecs().map(lambda parts: normalize_routespec(parts[0]))
#: the same, always with a host
rich_host_routespecs = any_hosts.flatmap(lambda host: any_routespecs(host=host)).map(
    lambda parts: normalize_routespec(parts[0])
)

namespaces = st.sampled_from(["jupyterhub", "hub2", "a"])
#: 3 most often: only there do rests hang below level 1
depths = st.sampled_from([1, 2, 3, 3])
#: settings a sharded proxy may have (shards need tree_depth >= 1); the entrypoint
#: is the one serve() routes from
shard_settings = st.builds(
    Settings,
    namespace=namespaces,
    tls=st.booleans(),
    pin_host=st.sampled_from(["", "hub.test", "hub.test:8000"]),
    error_middleware=st.sampled_from(["", "errors"]),
    tree_segment=st.integers(0, 2),
    tree_depth=depths,
)
#: the same, with other entrypoints (for checks that do not route)
any_shard_settings = st.builds(
    Settings,
    entrypoint=st.sampled_from(["http", "websecure"]),
    namespace=namespaces,
    tls=st.booleans(),
    pin_host=st.sampled_from(["", "hub.test", "hub.test:8000"]),
    tree_segment=st.integers(1, 2),
    tree_depth=depths,
)
shard_counts = st.integers(1, 5)
#: a stored route's target: two, so that stores may hold different versions
targets = st.sampled_from(["http://127.0.0.1:9000", "http://127.0.0.1:9001"])
#: the routing properties: a misrouted request needs a deep chain, a name that
#: ends it above the leaf level, shards that differ, and a request under it
ROUTING = hypothesis_settings(FAST, max_examples=300)


def chain(routespec: str, settings: Settings) -> list[Bucket]:
    return bucket_chain(routespec, settings.tree_segment, settings.tree_depth)


@st.composite
def bucket_sets(draw, settings: Settings) -> set[Bucket]:
    """Buckets of random routes' chains: for each route its leaf or a bucket above it."""
    specs = draw(st.lists(path_routespecs | host_routespecs | rich_routespecs, min_size=1, max_size=8))
    buckets: set[Bucket] = set()
    for spec in specs:
        found = chain(spec, settings)
        if found:
            buckets.add(found[draw(st.integers(-len(found), -1))])
    return buckets


# ------------------------------------------------------------------ 1. shard_of, route_shard


@FAST
@given(
    path_routespecs | host_routespecs | rich_routespecs,
    st.integers(0, 2),
    st.integers(1, 3),
    st.integers(1, 64),
)
def test_a_bucket_has_one_shard_in_range(routespec, tree_segment, tree_depth, shards):
    """shard_of is in range(K) and depends on the bucket's value alone (an equal
    bucket built apart has the same shard)."""
    for bucket in bucket_chain(routespec, tree_segment, tree_depth):
        k = shard_of(bucket, shards)
        assert isinstance(k, int) and 0 <= k < shards
        twin = Bucket(str(bucket.prefix), int(bucket.level), bool(bucket.host), str(bucket.domain))
        assert shard_of(twin, shards) == k == shard_of(bucket, shards)


@given(st.integers(-3, 0))
def test_shard_of_refuses_fewer_than_one_shard(shards):
    with pytest.raises(ValueError):
        shard_of(Bucket("/user/a", 1), shards)


def test_shard_of_is_the_same_in_another_process():
    """Shards must agree between Hub restarts (routes stay in their shard's
    store): no dependence on Python's per-process string hash."""
    buckets = [
        Bucket(prefix, level, host, domain)
        for prefix, level, host, domain in [
            ("/user/a", 1, False, ""),
            ("/user/al", 2, False, ""),
            ("/user/é", 1, False, ""),
            ("a", 1, True, "hub.example"),
            ("al", 2, True, ""),
            ("/t/user/b", 1, False, ""),
        ]
    ]
    here = [[shard_of(b, k) for k in (2, 3, 7, 16)] for b in buckets]
    code = (
        "import json, sys\n"
        "from traefik_proxy.core import Bucket, shard_of\n"
        "buckets = [Bucket(*b) for b in json.loads(sys.argv[1])]\n"
        "print(json.dumps([[shard_of(b, k) for k in (2, 3, 7, 16)] for b in buckets]))\n"
    )
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps([[b.prefix, b.level, b.host, b.domain] for b in buckets])],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == here


def test_shards_are_balanced_over_two_letter_buckets():
    """676 buckets /user/aa .. /user/zz over 4 shards: none gets under half
    or over twice its share (a stable hash spreads them; a first-character
    rule or a constant would not)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    buckets = [Bucket(f"/user/{a}{b}", 2) for a in letters for b in letters]
    counts = [0] * 4
    for bucket in buckets:
        counts[shard_of(bucket, 4)] += 1
    assert all(len(buckets) / 8 < c < len(buckets) / 2 for c in counts), counts


@FAST
@given(
    path_routespecs | hub_path_routespecs | host_routespecs | rich_routespecs,
    any_shard_settings,
    shard_counts,
    st.booleans(),
)
def test_route_shard_is_the_shard_of_the_leaf_bucket(routespec, settings, shards, host_routing):
    """leaf_bucket is the chain's last bucket (None if flat), whatever the mode.
    By path, route_shard is None exactly for a flat route, else the shard of
    that bucket, and a host route raises; by host, it is the shard of that
    bucket for a host route with a chain, None for every other route (every
    path-only route is replicated)."""
    found = chain(routespec, settings)
    host, _ = split_routespec(routespec)
    assert leaf_bucket(routespec, settings) == (found[-1] if found else None)
    if host and not host_routing:
        with pytest.raises(HostRouteWithoutHostRouting):
            route_shard(routespec, settings, shards, host_routing)
        return
    sharded_ = bool(found) and (bool(host) if host_routing else True)
    k = route_shard(routespec, settings, shards, host_routing)
    assert k == (shard_of(found[-1], shards) if sharded_ else None), (routespec, host_routing)
    if not host_routing:  # the default is routing by path
        assert route_shard(routespec, settings, shards) == k


@st.composite
def stores_holding(draw, specs: list[str], stores: list[int | None]) -> dict[int | None, list[Route]]:
    """Each routespec held by one or more of the stores, in random versions."""
    held: dict[int | None, list[Route]] = {s: [] for s in stores}
    for spec in specs:
        for place in draw(st.sets(st.sampled_from(stores), min_size=1)):
            held[place].append(make_route(spec, draw(targets), {}))
    return held


@FAST
@given(
    host_routespecs | rich_host_routespecs,
    st.sets(path_routespecs | hub_path_routespecs, max_size=4),
    any_shard_settings,
    st.integers(0, 4),
    st.integers(0, 4),
    st.data(),
)
@example("a.x/", set(), Settings(tree_segment=1, tree_depth=1), 1, 0, None)
@example("a.x/", {"/user/alice/"}, Settings(tree_segment=1, tree_depth=1), 0, 2, None)
def test_a_host_route_without_host_routing_is_refused(host_spec, paths, settings, shards, old, data):
    """By path, a routespec naming a host raises HostRouteWithoutHostRouting (a
    ValueError, so callers that catch ValueError keep working) from
    route_shard, whatever its chain, and from misplaced whenever K > 0,
    wherever the route is stored and whatever else is; with K = 0 misplaced
    sharded nothing and raises nothing: every route goes to the front alone,
    as in either mode. By host, neither raises."""
    assert issubclass(HostRouteWithoutHostRouting, ValueError)
    with pytest.raises(HostRouteWithoutHostRouting):
        route_shard(host_spec, settings, max(shards, 1))
    with pytest.raises(HostRouteWithoutHostRouting):
        route_shard(host_spec, settings, max(shards, 1), False)
    route_shard(host_spec, settings, max(shards, 1), True)  # no raise
    stores: list[int | None] = [None, *range(old)]
    specs = sorted({host_spec, *paths})
    if data is None:  # the examples: everything in every store
        held = {s: [make_route(spec, "http://127.0.0.1:9000", {}) for spec in specs] for s in stores}
    else:
        held = data.draw(stores_holding(specs, stores))
    if shards:
        with pytest.raises(HostRouteWithoutHostRouting):
            misplaced(held, settings, shards)
        with pytest.raises(HostRouteWithoutHostRouting):
            misplaced(held, settings, shards, False)
        misplaced(held, settings, shards, True)  # no raise
        return
    moves = misplaced(held, settings, 0, False)
    assert moves == misplaced(held, settings, 0) == misplaced(held, settings, 0, True)
    state = {s: {r.routespec for r in routes} for s, routes in held.items()}
    for move in moves:
        assert move.to in ((), (None,)), move
        for place in move.to:
            state[place].add(move.route.routespec)
        for place in move.drop:
            state[place].discard(move.route.routespec)
    assert state[None] == set(specs)
    assert not any(routes for s, routes in state.items() if s is not None), state


# ------------------------------------------------------------------ 2. the front tree


@FAST
@given(any_shard_settings, shard_counts, st.data())
@example(Settings(tree_segment=1, tree_depth=3), 3, None)
def test_the_front_tree_routes_each_bucket_to_its_shard(settings, shards, data):
    """One router per bucket and per bucket above it, named in the front's
    namespace, without a service: each has a rest (priority 1, everything)
    serving its own shard, so a bucket that splits only gains children;
    every parent exists; level 1 is on the entrypoint; no name is one the
    front's own relayout would take for its own buckets."""
    if data is None:  # the example: a deep name, a short one, and a host
        buckets = {
            chain("/user/alice/", settings)[-1],
            chain("/user/a/", settings)[-1],
            chain("al.x/", settings)[-1],
        }
    else:
        buckets = data.draw(bucket_sets(settings))
    ns = settings.namespace
    fns = front_namespace(ns)
    tree = front_tree(buckets, settings, shards)
    routers = (tree.get("http") or {}).get("routers") or {}
    every = with_parents(buckets)
    assert bool(routers) == bool(buckets)
    # exactly the buckets and their rests
    wanted = {bucket_name(b, fns) for b in every} | {rest_name(b, fns) for b in every}
    assert set(routers) == wanted
    services = front_services(ns, [f"http://127.0.0.1:{9000 + k}" for k in range(shards)])
    for bucket in every:
        name = bucket_name(bucket, fns)
        router = routers[name]
        service = shard_service_name(ns, shard_of(bucket, shards))
        assert service in services["http"]["services"]
        assert "service" not in router
        rest = routers[rest_name(bucket, fns)]
        assert rest["priority"] == 1 and rest["service"] == service
        assert rest["parentRefs"] == [name]
        assert matches(rest["rule"], "any.host", "/any/path")
        if bucket.level == 1:
            assert router["entryPoints"] == [settings.entrypoint]
            assert "parentRefs" not in router
            assert ("tls" in router) == settings.tls
        else:
            assert router["parentRefs"] == [bucket_name(bucket.parent, fns)]
            assert "entryPoints" not in router
        # the bucket's rule takes its own requests
        if bucket.host:
            host = bucket.prefix + ("." + bucket.domain if bucket.domain else "")
            assert matches(router["rule"], host, "/")
        else:
            host = settings.pin_host.rsplit(":", 1)[0] if settings.pin_host else "any.host"
            assert matches(router["rule"], host, bucket.prefix + "x/")
    for name, router in routers.items():
        for parent in router.get("parentRefs") or ():
            assert parent in routers, f"{name} hangs under missing {parent}"
        assert not name.startswith(f"{ns}{TREE_MARK}"), name
        # what sharding.remove_front_tree looks for
        assert name.startswith(f"{fns}{TREE_MARK}"), name
    # a pure function of the set: order and duplicates do not matter
    assert front_tree(sorted(buckets, reverse=True) * 2, settings, shards) == tree


@FAST
@given(shard_settings, shard_counts, st.booleans(), st.data())
def test_the_fronts_relayout_leaves_the_front_tree_alone(settings, shards, host_routing, data):
    """The front's store (its replicated routes' records and routers, which by
    host include bucketed path routes and so a route tree of the front's
    own; the front tree; the shard services) is what the front's relayout
    finds at start: it must remove none of the front tree's routers."""
    if host_routing:
        specs = data.draw(st.sets(path_routespecs | hub_path_routespecs | host_routespecs, max_size=8))
    else:
        specs = data.draw(st.sets(path_routespecs | hub_path_routespecs, max_size=8))
    replicated = [s for s in specs if route_shard(s, settings, shards, host_routing) is None]
    document = changes_for([Op("add", s, route_for(s)) for s in replicated], settings).apply_to({})
    leaves = {
        leaf_bucket(s, settings) for s in specs if route_shard(s, settings, shards, host_routing) is not None
    }
    tree = front_tree(leaves, settings, shards)
    document = deep_merge(document, tree)
    document = deep_merge(document, front_services(settings.namespace, ["http://127.0.0.1:1"] * shards))
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    changes, _, removed = relayout(records, document, settings)
    touched = {path[2] for path in changes.delete if path[:2] == ("http", "routers")}
    touched |= set((changes.merge.get("http") or {}).get("routers") or {})
    assert removed == 0
    assert not touched & set((tree.get("http") or {}).get("routers") or {})


# ------------------------------------------------------------------ 3. routing through front and shard


def config_of(routespecs_: set[str] | list[str], settings: Settings) -> dict:
    """An ordinary proxy's dynamic config holding these routes."""
    ops = [Op("add", r, route_for(r)) for r in sorted(routespecs_)]
    return changes_for(ops, settings).apply_to({}) if ops else {}


def sharded(
    settings: Settings,
    shards: int,
    held: set[str],
    stale: set[str] = frozenset(),
    host_routing: bool = False,
    layout: RouteTable | None = None,
):
    """(front config, shard configs) for these routes, as the shell lays them
    out: the front holds every replicated route (route_shard None), the
    front tree over the leaf buckets of the sharded routes, and the shard
    services; shard k holds its sharded routes and every replicated route.
    The front tree has the buckets of the sharded ``stale`` routes too:
    front buckets stay when routes go. A shard is a proxy of the front's
    settings but its own entrypoint (no TLS). ``layout``: the front's tree
    (default: the fixed one)."""

    def place(routespec: str) -> int | None:
        return route_shard(routespec, settings, shards, host_routing, layout)

    front = config_of([r for r in held if place(r) is None], settings)
    leaves = {leaf_bucket(r, settings, layout) for r in held | stale if place(r) is not None}
    front = deep_merge(front, front_tree(leaves, settings, shards))
    front = deep_merge(front, front_services(settings.namespace, [f"shard-{k}" for k in range(shards)]))
    shard = Settings(
        entrypoint=ENTRYPOINT,
        namespace=settings.namespace,
        pin_host=settings.pin_host,
        error_middleware=settings.error_middleware,
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
    )
    configs = [config_of([r for r in held if place(r) in (None, k)], shard) for k in range(shards)]
    return front, configs


def as_loaded(config: dict) -> dict:
    """A config as Traefik runs it: a router without a service or a child
    router, or under a parent it does not have, is an error and left out
    (a key-value store's front tree may be read between two transactions)."""
    routers = dict((config.get("http") or {}).get("routers") or {})
    while True:
        parents = {p for router in routers.values() for p in router.get("parentRefs") or ()}
        broken = {
            name
            for name, router in routers.items()
            if ("service" not in router and name not in parents)
            or any(p not in routers for p in router.get("parentRefs") or ())
        }
        if not broken:
            return {**config, "http": {**(config.get("http") or {}), "routers": routers}}
        for name in broken:
            del routers[name]


def through_shards(settings: Settings, front: dict, configs: list[dict], host: str, path: str):
    """The service a request reaches: the front's answer, or the answer of the
    shard whose service the front answered with."""
    by_service = {shard_service_name(settings.namespace, k): k for k in range(len(configs))}
    answer = serve(front, host, path)
    if answer in by_service:
        return serve(configs[by_service[answer]], host, path)
    return answer


@st.composite
def near(draw, held: set[str], hosts=request_hosts) -> tuple[str, str]:
    """A request at or near a held route: a prefix of its path (a shorter
    name, the path without its slash) or the whole, then maybe more; for
    its host, the route's own or another."""
    host, path = split_routespec(draw(st.sampled_from(sorted(held))))
    cut = len(path) if draw(st.booleans()) else draw(st.integers(1, len(path)))
    tail = draw(st.sampled_from(["", "/", "x", "x/", "/x", "/x/y"]))
    return (host if host and draw(st.booleans()) else draw(hosts)), path[:cut] + tail


@st.composite
def request_lists(draw, held: set[str], hosts=request_hosts) -> list[tuple[str, str]]:
    """Requests near the held routes and anywhere else."""
    anywhere = st.tuples(hosts, requests)
    return draw(st.lists(near(held, hosts) | anywhere if held else anywhere, min_size=1, max_size=12))


#: more shards than one, mostly: with one, every route is in shard 0
many_shards = st.sampled_from([1, 2, 3, 3, 4, 5, 5])


@ROUTING
@given(
    shard_settings,
    many_shards,
    st.sets(path_routespecs, max_size=8),
    st.sets(routespecs, max_size=3),
    st.data(),
)
@example(  # a short name ends its chain above the leaf level: it lives in the rest's shard
    Settings(tree_segment=1, tree_depth=2),
    3,
    {"/", "/hub/", "/user/", "/user/alice/", "/user/a/", "/user/al/"},
    {"/user/bob/", "/user/alx/"},
    [
        "/user/alice/x",
        "/user/a/x",
        "/user/a",
        "/user/al",
        "/user/al/x",
        "/user/alx/x",
        "/user/bob/",
        "/user/b",
        "/hub/x",
        "/x",
    ],
)
@example(  # three levels: /user/a, /user/al and /user/ali are in three different shards of 3
    Settings(tree_segment=1, tree_depth=3),
    3,
    {"/", "/user/", "/user/alice/", "/user/al/", "/user/a/"},
    set(),
    ["/user/alice/x", "/user/al/x", "/user/al", "/user/a/x", "/user/alx/", "/user/b/"],
)
def test_front_then_shard_reach_the_longest_prefix(settings, shards, held, stale, data):
    """By path (host_routing False): a request through the front tree to a
    shard and through that shard's own routes reaches the routespec that
    longest-prefix matching over all routes reaches (configurable-http-proxy's
    answer, and that of one Traefik holding every route); buckets of routes
    that are gone still lead to a shard, which answers as the flat routes do."""
    if isinstance(data, list):  # an explicit example's paths
        paths = data
    else:
        paths = [path for _, path in data.draw(request_lists(held | stale, st.just("")))]
    front, configs = sharded(settings, shards, held, stale - held, host_routing=False)
    host = settings.pin_host.rsplit(":", 1)[0] if settings.pin_host else "hub.test"
    for path in paths:
        expected = longest_prefix(held, path)
        want = route_name(expected, settings.namespace) if expected else None
        assert through_shards(settings, front, configs, host, path) == want, (path, sorted(held))


#: the front's buckets split past this many names (tiny, so that they split often)
front_bucket_sizes = st.sampled_from([1, 2, 3])
#: user routes that share their start, which the adaptive front spreads over shards
user_names = st.sampled_from(["a", "al", "ali", "alice", "alx", "alxa", "b", "bo", "u0", "u00", "u01", "u1"])
adaptive_user_routespecs = st.builds(lambda name, rest: f"/user/{name}/{rest}", user_names, st.just(""))


def front_of(routespecs_: set[str], settings: Settings, size: int) -> RouteTable:
    return front_layout([route_for(r) for r in sorted(routespecs_)], settings, size)


@ROUTING
@given(
    shard_settings,
    many_shards,
    front_bucket_sizes,
    st.sets(path_routespecs | adaptive_user_routespecs, max_size=10),
    st.sets(adaptive_user_routespecs | routespecs, max_size=3),
    st.data(),
)
def test_an_adaptive_front_reaches_the_longest_prefix(settings, shards, size, held, stale, data):
    """With the front's adaptive tree over every route it has seen (held and
    gone: the shell's layout only grows), a request through the front to a
    shard reaches what one Traefik holding every route reaches."""
    layout = front_of(held | stale, settings, size)
    front, configs = sharded(settings, shards, held, stale - held, layout=layout)
    host = settings.pin_host.rsplit(":", 1)[0] if settings.pin_host else "hub.test"
    for _, path in data.draw(request_lists(held | stale, st.just(""))):
        expected = longest_prefix(held, path)
        want = route_name(expected, settings.namespace) if expected else None
        assert through_shards(settings, front, configs, host, path) == want, (path, sorted(held))


class SplitWrites(msgspec.Struct):
    """What a split of the front's tree writes, in the shell's order: the
    front before and after, the shards while they hold both the old and the
    new copies (and after), and the front's new routers in the order they
    are written (children first, :func:`front_tree_steps`)."""

    front_before: dict
    front_after: dict
    configs_both: list
    configs_after: list
    new_routers: dict
    order: list

    def front_cut(self, cut: int, order: list | None = None) -> dict:
        """The front as a store holds it with the first ``cut`` new routers written."""
        written = {n: self.new_routers[n] for n in (self.order if order is None else order)[:cut]}
        return deep_merge(self.front_before, {"http": {"routers": written}})

    def check(self, settings: Settings, cut: int, host: str, path: str, allowed: set, now) -> None:
        """Before the front's write and at ``cut``, with the shards holding both
        copies: one of ``allowed``; the whole front written, with the shards
        holding both copies and once the old ones are gone: exactly ``now``."""
        for front in (self.front_before, as_loaded(self.front_cut(cut))):
            got = through_shards(settings, front, self.configs_both, host, path)
            assert got in allowed, (host, path, got, allowed, cut, len(self.order))
        for configs in (self.configs_both, self.configs_after):
            assert through_shards(settings, self.front_after, configs, host, path) == now, (host, path)


def split_writes(settings, shards, before, after, stale, host_routing, old, new) -> SplitWrites:
    front_before, configs_before = sharded(settings, shards, before, stale - before, host_routing, layout=old)
    front_after, configs_after = sharded(settings, shards, after, stale - after, host_routing, layout=new)
    configs_both = [
        deep_merge(deep_merge(config_of([], settings), configs_before[k]), configs_after[k])
        for k in range(shards)
    ]
    known = (front_before.get("http") or {}).get("routers") or {}
    new_routers = {
        name: router
        for name, router in ((front_after.get("http") or {}).get("routers") or {}).items()
        if name not in known
    }
    steps = front_tree_steps({"http": {"routers": new_routers}})
    order = [name for step in steps for name in step["http"]["routers"]]
    return SplitWrites(front_before, front_after, configs_both, configs_after, new_routers, order)


@ROUTING
@given(
    shard_settings,
    many_shards,
    front_bucket_sizes,
    st.sets(path_routespecs | adaptive_user_routespecs, max_size=10),
    st.sets(adaptive_user_routespecs | routespecs, min_size=1, max_size=6),
    st.sets(adaptive_user_routespecs, max_size=2),
    st.data(),
)
@example(  # /user/u splits: u00 and u01 move into /user/u0, of shard 1 (of 3) instead of 0
    Settings(tree_segment=1, tree_depth=2),
    3,
    2,
    {"/", "/user/u00/", "/user/u01/"},
    {"/user/u02/"},
    set(),
    None,
)
def test_every_step_of_a_split_serves_every_route(settings, shards, size, before, added, stale, data):
    """Adds split front buckets and move routes into other shards, in the
    shell's order: (1) every added route set in its shard and every moved
    route in its new shard too; (2) the front's new buckets written, read
    by Traefik at any cut of the write (parents first); (3) the moved routes
    deleted from their old shards. At every step a request for a route held
    before reaches what it reached before (or a longer route being added);
    once the front is written, exactly what one Traefik holding every route
    reaches."""
    added = {r for r in added - before if route_shard(r, settings, shards) is not None}
    old = front_of(before | stale, settings, size)
    new = old.after([(r, route_for(r)) for r in sorted(added - before - stale)])
    held_before = {r for r in before if route_shard(r, settings, shards) is not None}
    moves = resharded(old, new, held_before, settings, shards)
    for move in moves:
        assert move.source == route_shard(move.routespec, settings, shards, False, old)
        assert move.target == route_shard(move.routespec, settings, shards, False, new) != move.source
        assert move.bucket == leaf_bucket(move.routespec, settings, new)
    # every route whose shard changed is a move
    for r in held_before:
        if route_shard(r, settings, shards, False, old) != route_shard(r, settings, shards, False, new):
            assert r in {m.routespec for m in moves}

    after = before | added
    # (1): the shards hold the old routes where they were, and copies where they go;
    # (2): the new front routers, in the shell's order (children first), cut anywhere
    w = split_writes(settings, shards, before, after, stale, False, old, new)
    cut = len(w.order) if data is None else data.draw(st.integers(0, len(w.order)))
    host = settings.pin_host.rsplit(":", 1)[0] if settings.pin_host else "hub.test"
    if data is None:
        assert len(moves) == 2  # the example is the one it says
        paths = ["/user/u00/x", "/user/u01/", "/user/u02/", "/user/u0", "/user/u1/", "/x"]
    else:
        paths = [path for _, path in data.draw(request_lists(after | stale, st.just("")))]
    name = lambda r: route_name(r, settings.namespace) if r else None  # noqa: E731
    for path in paths:
        was, now = longest_prefix(before, path), longest_prefix(after, path)
        allowed = {name(now)} if now in before or now is None else {name(now), name(was)}
        # the whole front written: exactly; and so (3) after the moved routes leave
        w.check(settings, cut, host, path, allowed, name(now))


def test_a_split_of_two_levels_at_once_is_written_children_first():
    """``/user/a`` gains ``/user/al`` and ``/user/alx`` in one split (bucket
    size 3, three shards: the two new buckets' shards differ). Written in
    :func:`front_tree_steps`' order and read at any cut, ``/user/alx/``
    reaches its route; parents first, one cut sent it to the Hub (the shard
    of ``/user/al`` answered with its flat ``/``)."""
    settings, shards = Settings(tree_segment=1, tree_depth=1), 3
    before = {"/", "/user/a/", "/user/al/", "/user/alx/"}
    after = before | {"/user/ali/", "/user/alxa/", "/user/b/"}
    old, new = front_of(before, settings, 3), front_of(after, settings, 3)
    assert route_shard("/user/ali/", settings, shards, False, new) != route_shard(
        "/user/alx/", settings, shards, False, new
    )
    w = split_writes(settings, shards, before, after, set(), False, old, new)
    want = route_name("/user/alx/", settings.namespace)

    def answers(order: list[str]) -> set:
        return {
            through_shards(
                settings, as_loaded(w.front_cut(cut, order)), w.configs_both, "hub.test", "/user/alx/x"
            )
            for cut in range(len(order) + 1)
        }

    assert answers(w.order) == {want}
    parents_first = sorted(w.new_routers, key=lambda n: (tree_level(n), n.endswith("-rest"), n))
    assert answers(parents_first) == {want, route_name("/", settings.namespace)}


#: subdomains sharing their start, each with one or two routes (JupyterHub's subdomain_host)
adaptive_host_routespecs = st.builds(
    lambda name, rest: f"{name}.x/{rest}", user_names, st.sampled_from(["", "user/x/lab/"])
)


@ROUTING
@given(
    st.builds(Settings, tree_segment=st.integers(1, 2), tree_depth=st.integers(1, 3)),
    many_shards,
    front_bucket_sizes,
    st.sets(adaptive_host_routespecs, max_size=10),
    st.sets(adaptive_host_routespecs, min_size=1, max_size=6),
    st.sets(flat_routespecs, max_size=2),
    st.data(),
)
def test_every_step_of_a_host_split_serves_every_route(settings, shards, size, before, added, flat, data):
    """As :func:`test_every_step_of_a_split_serves_every_route`, by host
    (host_routing True, the Hub's path-only routes in the front and every
    shard): set in the new shards, the front's new host buckets cut
    anywhere, the old copies gone; against one Traefik holding every route
    on its entrypoint."""
    before = before | flat
    added = added - before
    old = front_of(before, settings, size)
    new = old.after([(r, route_for(r)) for r in sorted(added)])
    held_before = {r for r in before if route_shard(r, settings, shards, True, old) is not None}
    moves = resharded(old, new, held_before, settings, shards, True)
    for r in held_before:
        if route_shard(r, settings, shards, True, old) != route_shard(r, settings, shards, True, new):
            assert r in {m.routespec for m in moves}
    after = before | added
    w = split_writes(settings, shards, before, after, set(), True, old, new)
    cut = data.draw(st.integers(0, len(w.order)))
    one_before, one_after = flat_layout(settings, before), flat_layout(settings, after)
    names_before = {route_name(r, settings.namespace) for r in before}
    for host, path in data.draw(request_lists(after)):
        try:
            was, now = serve(one_before, host, path), serve(one_after, host, path)
        except Tie:
            continue
        allowed = {now} if now is None or now in names_before else {now, was}
        w.check(settings, cut, host, path, allowed, now)


host_settings = st.builds(
    Settings,
    tree_segment=st.integers(0, 2),
    tree_depth=depths,
    error_middleware=st.sampled_from(["", "errors"]),
)
#: with these, "/", "/hub/" and "/user/" are flat
hub_settings = st.builds(
    Settings,
    tree_segment=st.integers(1, 2),
    tree_depth=depths,
    error_middleware=st.sampled_from(["", "errors"]),
)


def flat_layout(settings: Settings, held: set[str]) -> dict:
    """One Traefik holding every route on its entrypoint (no tree, no shards)."""
    return config_of(
        held,
        Settings(
            namespace=settings.namespace,
            error_middleware=settings.error_middleware,
            tree_segment=settings.tree_segment,
            tree_depth=0,
        ),
    )


def check_as_flat(settings, shards, held, stale, requests_, host_routing):
    """Through front and shard as through one Traefik with every route on its
    entrypoint; ``requests_`` an explicit list, or st.data() to draw them."""
    if not isinstance(requests_, list):
        requests_ = requests_.draw(request_lists(held | stale))
    front, configs = sharded(settings, shards, held, stale - held, host_routing)
    flat = flat_layout(settings, held)
    for host, path in requests_:
        try:
            want = serve(flat, host, path)
        except Tie:
            continue  # the flat layout itself is ambiguous here (equal priorities)
        assert through_shards(settings, front, configs, host, path) == want, (host, path, sorted(held))


@ROUTING
@given(
    hub_settings,
    many_shards,
    st.sets(host_routespecs, max_size=8),
    st.sets(flat_routespecs, max_size=3),
    st.sets(host_routespecs, max_size=3),
    st.data(),
)
def test_subdomain_routes_through_shards_route_as_one_traefik(
    settings, shards, users, flat, stale, requests_
):
    """JupyterHub's subdomains (host_routing True): every user route has a
    host, beside the Hub's flat path routes. Through front and shard, every
    request reaches what one Traefik holding every route on its entrypoint
    reaches."""
    check_as_flat(settings, shards, users | flat, stale, requests_, host_routing=True)


@ROUTING
@given(
    host_settings,
    many_shards,
    st.sets(host_routespecs, max_size=5),
    st.sets(path_routespecs | hub_path_routespecs, max_size=5),
    st.sets(routespecs | host_routespecs, max_size=3),
    st.data(),
)
@example(  # a path-only user route sharded apart from a host bucket it also matches under
    Settings(tree_segment=1, tree_depth=1),
    3,
    {"a.x/"},
    {"/user/alice/"},
    set(),
    [("a.x", "/user/alice/x")],
)
@example(  # a service's route under a host bucket of two levels, whose rest is in another shard
    Settings(tree_segment=1, tree_depth=2),
    3,
    {"a.x/", "al.x/"},
    {"/", "/services/x/", "/user/al/lab/"},
    {"alx.x/"},
    [
        ("a.x", "/services/x/y"),
        ("al.x", "/user/al/lab/z"),
        ("alx.x", "/services/x"),
        ("zz.x", "/user/al/lab/"),
        ("a.x", "/hub/"),
    ],
)
def test_host_and_path_routes_through_shards_route_as_one_traefik(
    settings, shards, users, paths, stale, requests_
):
    """Host routing (host_routing True) with path-only routes beside the host
    user routes, bucketed ones too (/services/x/, /user/alice/): a path-only
    route matches any host, so a request to a host bucket may be meant for a
    path route (the longer prefix wins without shards, and within one Traefik
    the host bucket holds a copy of it). Every path-only route is replicated,
    so each shard's host buckets copy it. Through front and shard, every
    request reaches what one Traefik holding every route reaches."""
    check_as_flat(settings, shards, users | paths, stale, requests_, host_routing=True)


# ------------------------------------------------------------------ 4. misplaced


@st.composite
def placements(draw):
    """(settings, K, host_routing, held): random versions of random routes
    over the front (None) and the shard stores of an old K (larger, smaller
    or equal); host routes only with host routing."""
    settings = draw(shard_settings)
    shards = draw(st.integers(0, 4))
    host_routing = draw(st.booleans())
    old = draw(st.integers(0, 5))
    stores: list[int | None] = [None, *range(old)]
    kinds = path_routespecs | hub_path_routespecs
    if host_routing:
        kinds = kinds | host_routespecs
    specs = draw(st.sets(kinds, min_size=1, max_size=8))
    held: dict[int | None, dict[str, Route]] = {s: {} for s in stores}
    for spec in sorted(specs):
        for place in draw(st.sets(st.sampled_from(stores), min_size=1)):
            held[place][spec] = make_route(spec, draw(targets), {})
    return settings, shards, host_routing, held


def places_of(
    routespec: str, settings: Settings, shards: int, host_routing: bool
) -> tuple[int | None, set[int | None]]:
    """(a route's own place, every place that should hold it)."""
    if not shards:
        return None, {None}
    k = route_shard(routespec, settings, shards, host_routing)
    return (None, {None, *range(shards)}) if k is None else (k, {k})


@FAST
@given(placements())
@example(  # a write interrupted between stores: its own shard (1 of 2) has the newer version
    (
        Settings(tree_segment=1, tree_depth=1),
        2,
        False,
        {
            None: {"/user/alice/": make_route("/user/alice/", "http://127.0.0.1:9000", {})},
            0: {"/user/alice/": make_route("/user/alice/", "http://127.0.0.1:9002", {})},
            1: {"/user/alice/": make_route("/user/alice/", "http://127.0.0.1:9001", {})},
        },
    ),
)
@example(  # by host, a path user route sharded by an earlier version goes back everywhere
    (
        Settings(tree_segment=1, tree_depth=1),
        2,
        True,
        {
            None: {"a.x/": make_route("a.x/", "http://127.0.0.1:9000", {})},
            0: {"/user/alice/": make_route("/user/alice/", "http://127.0.0.1:9001", {})},
            1: {"a.x/": make_route("a.x/", "http://127.0.0.1:9000", {})},
        },
    ),
)
def test_moves_put_every_route_where_k_says(placement):
    """Applying the moves (set in each ``to``, delete from each ``drop``)
    leaves each sharded route (route_shard in the Hub's mode) in its shard
    alone (in the front alone for K = 0), each replicated route in the front
    and every shard below K, nothing in a shard >= K; every place holds one
    version: its own place's if that held one, else the front's. Moves touch
    only what is wrong, and a second look finds nothing to move."""
    settings, shards, host_routing, held = placement
    before = {s: dict(routes) for s, routes in held.items()}
    moves = misplaced({s: list(r.values()) for s, r in held.items()}, settings, shards, host_routing)
    state = {s: dict(routes) for s, routes in held.items()}
    for move in moves:
        spec = move.route.routespec
        assert not set(move.to) & set(move.drop), move
        for place in move.to:
            assert before.get(place, {}).get(spec) != move.route, f"{move}: {place} already right"
            state.setdefault(place, {})[spec] = move.route
        for place in move.drop:
            assert spec in before.get(place, {}), f"{move}: {place} does not hold it"
            del state[place][spec]
    specs = {spec for routes in before.values() for spec in routes}
    for spec in specs:
        own, wanted = places_of(spec, settings, shards, host_routing)
        where = {s for s, routes in state.items() if spec in routes}
        assert where == wanted, (spec, where, wanted)
        (version, *others) = [state[s][spec] for s in sorted(where, key=lambda s: -1 if s is None else s)]
        assert all(other == version for other in others), (spec, version, others)
        if spec in before.get(own, {}):
            assert version == before[own][spec], (spec, "its own place's version must win")
        elif spec in before[None]:
            assert version == before[None][spec], (spec, "the front's version must win")
        else:
            assert version in [routes[spec] for routes in before.values() if spec in routes]
    assert all(s is None or s < shards for s, routes in state.items() if routes)
    again = misplaced({s: list(r.values()) for s, r in state.items()}, settings, shards, host_routing)
    assert again == []


def test_the_front_version_wins_when_the_own_place_has_none():
    """A user route in the front (a store from before shards) and in a wrong
    shard with another target: the front's goes to its shard."""
    settings = Settings(tree_segment=1, tree_depth=1)
    spec = "/user/alice/"
    k = route_shard(spec, settings, 3)
    other = (k + 1) % 3
    old = make_route(spec, "http://127.0.0.1:9000", {})
    new = make_route(spec, "http://127.0.0.1:9001", {})
    (move,) = misplaced({None: [new], other: [old]}, settings, 3)
    assert move.route == new and move.to == (k,) and set(move.drop) == {None, other}


# ------------------------------------------------------------------ 5. with_parents


def above(bucket: Bucket, level: int) -> Bucket:
    """The bucket at ``level`` on the way up from ``bucket``."""
    while bucket.level > level:
        bucket = bucket.parent
    return bucket


@FAST
@given(any_shard_settings, st.data())
def test_with_parents_is_the_closure_under_parent(settings, data):
    """A superset of the buckets, closed under .parent down to level 1, and
    nothing else: every bucket in it is one given or above one given."""
    buckets = data.draw(bucket_sets(settings))
    found = with_parents(buckets)
    assert buckets <= found
    for bucket in found:
        assert bucket.level >= 1
        if bucket.level > 1:
            assert bucket.parent in found
        assert any(above(b, bucket.level) == bucket for b in buckets if b.level >= bucket.level), (
            f"{bucket} is above none of {buckets}"
        )
    assert with_parents(list(buckets) * 2) == found
