"""Properties of the route tree (traefik_proxy.core.routing and its use in batches).

The routers are run through a model of Traefik's multi-layer routing
(:func:`serve`): on the entrypoint the root routers are tried highest
priority first; a router with a service answers, a router with children tries
its children the same way, and a parent whose children all miss answers 404.
Each rule goes through :mod:`.rule_model`. The reference is the longest-prefix
match configurable-http-proxy does: the tree must route every request exactly
as the flat layout and as that reference do, after any sequence of batches.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from traefik_proxy.core import (
    HOST_ROUTE_PRIORITY,
    Changes,
    Op,
    RouteTable,
    Settings,
    bucket_chain,
    bucket_fragment,
    bucket_name,
    changes_for,
    final_routes,
    is_tree_router,
    make_route,
    relayout,
    route_name,
)

from .rule_model import matches
from .strategies import FAST

ENTRYPOINT = "http"


class Tie(AssertionError):
    """Two matching routers of equal priority: Traefik's order between them is its sort's whim."""


def priority(router: dict[str, Any]) -> int:
    """Traefik's priority of a router: its own, else its rule's length in bytes."""
    return int(router.get("priority") or len(router["rule"].encode()))


def serve(config: dict[str, Any], host: str, path: str) -> str | None:
    """The service a request reaches in Traefik's model, or None for a 404."""
    routers = (config.get("http") or {}).get("routers") or {}
    children: dict[str, list[str]] = {}
    roots = []
    for name, router in routers.items():
        for parent in router.get("parentRefs") or ():
            children.setdefault(parent, []).append(name)
        if not router.get("parentRefs") and ENTRYPOINT in (router.get("entryPoints") or ()):
            roots.append(name)

    def first(names: list[str]) -> str | None:
        # Traefik sorts by priority, highest first; routers of equal priority
        # must never both match (else the order would be Go's sort's whim)
        hits = [n for n in names if matches(routers[n]["rule"], host, path)]
        if not hits:
            return None
        top = max(priority(routers[n]) for n in hits)
        best = [n for n in hits if priority(routers[n]) == top]
        if len(best) > 1:
            raise Tie(f"routers {best} tie at priority {top} for {host}{path}")
        router = routers[best[0]]
        if "service" in router:
            assert best[0] not in children, f"{best[0]} has a service and children"
            return router["service"]
        return first(children.get(best[0], []))

    return first(roots)


def longest_prefix(routespecs: set[str], path: str) -> str | None:
    """configurable-http-proxy's answer: the longest routespec the path is under."""
    best = None
    for r in routespecs:
        if path.startswith(r) or path == r[:-1]:
            if best is None or len(r) > len(best):
                best = r
    return best


# small alphabets, so that routes share prefixes and buckets collide
segment = st.sampled_from(["a", "al", "alice", "alx", "b", "bo", "user", "u", "é", "s2"])
routespecs = st.lists(segment, max_size=4).map(lambda segs: "/" + "".join(s + "/" for s in segs))
requests = st.builds(
    lambda segs, tail: "/" + "/".join(segs) + tail,
    st.lists(segment, max_size=5),
    st.sampled_from(["", "/", "x", "/x"]),
)
tree_settings = st.builds(
    Settings,
    tree_segment=st.integers(0, 2),
    tree_depth=st.integers(0, 3),
    error_middleware=st.sampled_from(["", "errors"]),
    # 0: the fixed tree; small sizes split and merge buckets all the time
    tree_bucket_size=st.sampled_from([0, 1, 2, 3]),
)
batches = st.lists(
    st.lists(st.tuples(st.booleans(), routespecs), min_size=1, max_size=6), min_size=1, max_size=5
)
# host routes (JupyterHub's subdomains), mixed with path routes
hosts = st.sampled_from(["a.x", "al.x", "alx.x", "b.x", "hub.x", "al.y", "localhost"])
host_routespecs = st.builds(lambda h, path: h + path, hosts, routespecs)
mixed_batches = st.lists(
    st.lists(st.tuples(st.booleans(), routespecs | host_routespecs), min_size=1, max_size=6),
    min_size=1,
    max_size=5,
)
request_hosts = hosts | st.sampled_from(["zz.x", "AL.X", "alb.x", "al.x.y", "alb"])


def route_for(routespec: str):
    return make_route(routespec, "http://127.0.0.1:9000", {"hub": True} if routespec == "/" else {})


def run_batches(settings: Settings, batches) -> tuple[dict, set[str], RouteTable]:
    """Apply batches as the proxy does: a table carried from one batch to the next."""
    document: dict = {}
    table = RouteTable(
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
        bucket_size=settings.tree_bucket_size,
    )
    held: set[str] = set()
    for batch in batches:
        ops = [Op("add", r, route_for(r)) if add else Op("delete", r) for add, r in batch]
        document = changes_for(ops, settings, table).apply_to(document)
        table = table.after(final_routes(ops))
        for routespec, route in final_routes(ops):
            (held.add if route else held.discard)(routespec)
    return document, held, table


@FAST
@given(tree_settings, batches, st.lists(requests, min_size=1, max_size=12))
@example(  # a bucket (/user/a) must outrank the flat route just above it (/user/)
    Settings(tree_segment=1, tree_depth=2),
    [[(True, "/user/"), (True, "/user/alice/")]],
    ["/user/alice/x"],
)
def test_the_tree_routes_as_the_longest_prefix_does(settings, batches, paths):
    document, held, _ = run_batches(settings, batches)
    for path in paths:
        expected = longest_prefix(held, path)
        want = route_name(expected, settings.namespace) if expected else None
        assert serve(document, "hub.test", path) == want, (path, sorted(held))


@FAST
@given(tree_settings, batches)
@example(Settings(tree_segment=1, tree_depth=2), [[(True, "/user/al/")], [(False, "/user/al/")]])
def test_every_router_hangs_somewhere_and_no_bucket_is_empty(settings, batches):
    document, held, table = run_batches(settings, batches)
    routers = (document.get("http") or {}).get("routers") or {}
    services = (document.get("http") or {}).get("services") or {}
    for name, router in routers.items():
        for parent in router.get("parentRefs") or ():
            assert parent in routers, f"{name} hangs under missing {parent}"
        if "service" in router:
            assert router["service"] in services, f"{name} serves missing {router['service']}"
    # buckets are exactly the ones the held routes hang under
    wanted = {b for r in held for b in table.chain(r)}
    assert set(table.parents) == wanted
    buckets = {n for n in routers if is_tree_router(n) and not n.endswith("-rest")}
    assert len(buckets) == len(wanted)


@FAST
@given(tree_settings, tree_settings, batches, st.lists(requests, min_size=1, max_size=8))
def test_relayout_moves_a_store_written_with_other_settings(before, after, batches, paths):
    document, held, _ = run_batches(before, batches)
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    changes, _, _ = relayout(records, document, after)
    moved = changes.apply_to(document)
    for path in paths:
        expected = longest_prefix(held, path)
        want = route_name(expected, after.namespace) if expected else None
        assert serve(moved, "hub.test", path) == want, (path, sorted(held))
    # and a second relayout has nothing left to do
    again, rewritten, removed = relayout(records, moved, after)
    assert (rewritten, removed) == (0, 0) and again == Changes(
        merge={}, delete=[], records={}, drop_records=[]
    )


def test_relayout_drops_what_earlier_versions_wrote_and_traefik_defaults():
    """A store from before: each route's router had its priority (in a path
    bucket, Traefik's default ranks the same) and its service passHostHeader
    (Traefik's default): relayout deletes both keys, and then rests."""
    settings = Settings(tree_segment=1, tree_depth=2)
    document, held, _ = run_batches(settings, [[(True, "/user/alice/"), (True, "/")]])
    name = route_name("/user/alice/", settings.namespace)
    hub = route_name("/", settings.namespace)
    http = document["http"]
    assert "priority" not in http["routers"][name] and "priority" in http["routers"][hub]
    http["routers"][name]["priority"] = "12"
    for service in (name, hub):
        http["services"][service]["loadBalancer"]["passHostHeader"] = "true"
    records = document["jupyterhub"]["routes"]
    changes, rewritten, _ = relayout(records, document, settings)
    assert ("http", "routers", name, "priority") in changes.delete and rewritten == 1
    for service in (name, hub):
        assert ("http", "services", service, "loadBalancer", "passHostHeader") in changes.delete
    moved = changes.apply_to(document)
    assert relayout(records, moved, settings)[0] == Changes(merge={}, delete=[], records={}, drop_records=[])


@FAST
@given(tree_settings, mixed_batches, st.lists(st.tuples(request_hosts, requests), min_size=1, max_size=12))
@example(  # a host route outranks a flat path route that outranks its bucket's start
    Settings(tree_segment=1, tree_depth=2),
    [[(True, "/user/"), (True, "a.x/user/al/")]],
    [("a.x", "/user/al/x")],
)
@example(  # a longer path-only route outranks a host route (as in the flat layout): the
    # host bucket's routers keep explicit priorities, where rule lengths would differ
    Settings(tree_segment=1, tree_depth=2),
    [[(True, "a.x/"), (True, "/user/alice/lab-some-long/")]],
    [("a.x", "/user/alice/lab-some-long/x")],
)
def test_host_buckets_route_as_the_flat_layout_does(settings, batches, requests_):
    """Host routes hang under host buckets, which copy the path-only routes:
    every request reaches what it reaches with every route on the entrypoint."""
    flat_settings = Settings(
        tree_segment=settings.tree_segment,
        tree_depth=0,
        error_middleware=settings.error_middleware,
        tree_bucket_size=settings.tree_bucket_size,
    )
    tree, held, _ = run_batches(settings, batches)
    flat, _, _ = run_batches(flat_settings, batches)
    for host, path in requests_:
        try:
            want = serve(flat, host, path)
        except Tie:
            continue  # the flat layout itself is ambiguous here (equal priorities)
        assert serve(tree, host, path) == want, (host, path, sorted(held))


@FAST
@given(tree_settings, mixed_batches, st.lists(st.tuples(request_hosts, requests), min_size=1, max_size=8))
def test_relayout_brings_host_routes_of_earlier_versions_to_their_priority(settings, batches, requests_):
    """A store written before host routes outranked path-only ones (a host
    route's priority was the length of ``/host/path``, and host buckets kept
    the fixed tree) is re-laid at start: then it routes as the flat layout of
    today, and a second relayout has nothing to do."""
    earlier = Settings(
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
        error_middleware=settings.error_middleware,
        tree_bucket_size=0,
    )
    document, held, _ = run_batches(earlier, batches)
    for name, router in ((document.get("http") or {}).get("routers") or {}).items():
        if not is_tree_router(name) and router.get("priority", 0) > HOST_ROUTE_PRIORITY:
            router["priority"] -= HOST_ROUTE_PRIORITY
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    moved = relayout(records, document, settings)[0].apply_to(document)
    flat_settings = Settings(
        tree_segment=settings.tree_segment, tree_depth=0, error_middleware=settings.error_middleware
    )
    flat, _, _ = run_batches(flat_settings, batches)
    for host, path in requests_:
        try:
            want = serve(flat, host, path)
        except Tie:
            continue
        assert serve(moved, host, path) == want, (host, path, sorted(held))
    assert relayout(records, moved, settings)[0] == Changes(merge={}, delete=[], records={}, drop_records=[])


def test_a_host_bucket_takes_only_its_own_domain():
    """Another Hub's host on the same Traefik never enters this Hub's host buckets."""
    for bucket in bucket_chain("alice.hub-a.example:8000/", 1, 2):
        rule = bucket_fragment(
            bucket,
            namespace="a",
            entrypoint="http",
            tls=False,
            pin_host="",
            fallback=None,
            error_middleware="",
        )["http"]["routers"][bucket_name(bucket, "a")]["rule"]
        assert matches(rule, "ALICE.hub-a.example", "/")
        assert matches(rule, "al.hub-a.example", "/")
        for other in (
            "alice.hub-b.example",
            "al.x.hub-a.example",
            "alice.hub-a.example.org",
            "hub-a.example",
        ):
            assert not matches(rule, other, "/"), (rule, other)
