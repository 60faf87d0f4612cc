"""Shards: user routes in K shard Traefiks behind a front Traefik.

A Traefik rebuilds its whole configuration on every change, at about 0.1 ms
of CPU per route it holds (docs/reload-cost.md), so with 10,000 routes each
spawn costs a CPU-second. Sharded, a route lives in one of K shard Traefiks,
chosen by the *leaf bucket* of the front's route tree it hangs under
(``/user/al`` for ``/user/alice/``), and a change reloads that shard alone.

The front's tree is a :class:`~.routing.RouteTable` of its own
(:func:`front_layout`): adaptive by default, so that names sharing their
start (``u00042``, ``jupyter-alice``) spread over many leaf buckets, and so
over the shards, instead of piling up in one bucket and one shard. The
shell only ever adds to it while the Hub runs (a bucket splits, never
merges back), so a route only moves to a deeper bucket, and then to that
bucket's shard (:func:`resharded`): it is set in its new shard, the front's
new bucket is written, then it is deleted from the old shard. The front
bucket's rest keeps sending the route's requests to the old shard until the
new bucket is served, so no step leaves it unserved.

The front Traefik holds the routes without a user segment (the Hub's ``/``,
``/hub/``: *flat* routes, which every shard holds too, so that a shard's
bucket rests fall back to them; with host routing, every path-only route:
see :func:`route_shard`) and the *front tree*: the route tree's buckets,
under names of their own (:func:`front_namespace`), where every bucket
holds its children (if any) and a *rest* router sending what matches none of
them to the bucket's own shard. A route hanging in a bucket (its leaf, the
deepest bucket of its chain) lives in that bucket's shard, so a bucket that
splits only gains children: nothing written before is rewritten.

A request that enters a bucket whose routes are all gone still reaches a
shard, which answers as the flat routes say (the Hub), so front buckets need
never be removed while the Hub runs; at start the front tree is written anew
from the routes the shards hold (:func:`front_tree`).

Everything here is pure: which shard a route lives in, the front tree, the
front's shard services, and which stored routes must move when K changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import msgspec

from .config import Nested, Settings
from .routespec import Route, split_routespec
from .routing import (
    Bucket,
    RouteTable,
    bucket_chain,
    bucket_fragment,
    bucket_name,
    is_bucket_router,
    rest_name,
    tree_level,
)

#: what the front's tree routers are named under: ``<namespace>-front--tree-...``,
#: so the front's own relayout (which removes ``<namespace>--tree-`` routers no
#: route of its own uses) never takes them for its own
FRONT_SUFFIX = "-front"


def front_namespace(namespace: str) -> str:
    return namespace + FRONT_SUFFIX


def shard_of(bucket: Bucket, shards: int) -> int:
    """The shard of a bucket's routes: a stable hash of the bucket, so that
    shards stay balanced however the names' first characters are spread."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    key = f"{int(bucket.host)}:{bucket.domain}:{bucket.prefix}"
    return zlib.crc32(key.encode()) % shards


class HostRouteWithoutHostRouting(ValueError):
    """A host route for a sharded proxy whose Hub routes by path."""


def front_layout(routes: Iterable[Route], settings: Settings, bucket_size: int) -> RouteTable:
    """The front's route tree over these routes: adaptive with buckets of at
    most ``bucket_size`` user names (0: the fixed tree of ``tree_depth``
    levels, where a route's bucket never depends on other routes)."""
    return RouteTable(
        routes,
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
        bucket_size=bucket_size,
    )


def route_shard(
    routespec: str,
    settings: Settings,
    shards: int,
    host_routing: bool = False,
    layout: RouteTable | None = None,
) -> int | None:
    """The shard a normalized routespec lives in; None for a route that the
    front and every shard hold.

    Which routes are sharded follows the Hub's routing (JupyterHub's
    ``subdomain_host``, the proxy's ``host_routing``): by path, the routes
    with a bucket; by host, the host routes, and every path-only route (the
    Hub's, services') is held everywhere, because a host bucket must see
    every path-only route to keep the longest match (see
    :mod:`.routing`). A host route without host routing raises
    :class:`HostRouteWithoutHostRouting`: the front could not send its
    requests to one shard and keep the longest match.

    ``layout``: the front's tree (:func:`front_layout`); without one, the
    fixed tree of ``settings.tree_depth`` levels.
    """
    host, _ = split_routespec(routespec)
    if host and not host_routing:
        raise HostRouteWithoutHostRouting(
            f"routespec {routespec!r} names a host, but with traefik_shards only a Hub "
            "with host routing (JupyterHub's subdomain_host) may add host routes; "
            "set c.JupyterHub.subdomain_host or c.TraefikProxy.traefik_shards = 0"
        )
    leaf = leaf_bucket(routespec, settings, layout)
    if leaf is None or (host_routing and not host):
        return None
    return shard_of(leaf, shards)


def leaf_bucket(routespec: str, settings: Settings, layout: RouteTable | None = None) -> Bucket | None:
    """The deepest bucket a routespec hangs under (what the front routes by); None if flat.

    ``layout``: the front's tree; for a route it does not hold, the deepest of
    its buckets that exist, or the first-level bucket the route would make."""
    chain = layout.chain(routespec) if layout is not None else []
    if not chain:
        depth = settings.tree_depth if layout is None else min(settings.tree_depth, 1)
        chain = bucket_chain(routespec, settings.tree_segment, depth)
    return chain[-1] if chain else None


class Reshard(msgspec.Struct, frozen=True):
    """A held route whose front bucket split under it, into a bucket of
    another shard: set it in ``target``, write the front's ``bucket``, then
    delete it from ``source``."""

    routespec: str
    source: int
    target: int
    bucket: Bucket


def resharded(
    before: RouteTable,
    after: RouteTable,
    held: Iterable[str],
    settings: Settings,
    shards: int,
    host_routing: bool = False,
) -> list[Reshard]:
    """The routes of ``held`` (routespecs, held in both layouts) that a change of
    the front's layout from ``before`` to ``after`` puts into another shard."""
    wanted = set(held)
    moves = []
    for routespec, bucket in after.moved(before):
        if routespec not in wanted:
            continue
        source = route_shard(routespec, settings, shards, host_routing, before)
        target = route_shard(routespec, settings, shards, host_routing, after)
        if source is not None and target is not None and source != target:
            moves.append(Reshard(routespec, source, target, bucket))
    return moves


def shard_service_name(namespace: str, k: int) -> str:
    """The front's service for shard ``k``."""
    return f"{namespace}-shard-{k}"


def front_services(namespace: str, shard_urls: list[str]) -> Nested:
    """The front's services, one per shard: its public entrypoint's URL."""
    services = {
        shard_service_name(namespace, k): {"loadBalancer": {"servers": [{"url": url}]}}
        for k, url in enumerate(shard_urls)
    }
    return {"http": {"services": services}}


def with_parents(buckets: Iterable[Bucket]) -> set[Bucket]:
    """The buckets and every bucket above them."""
    found: set[Bucket] = set()
    for bucket in buckets:
        while bucket not in found:
            found.add(bucket)
            if bucket.level == 1:
                break
            bucket = bucket.parent
    return found


def front_tree(buckets: Iterable[Bucket], settings: Settings, shards: int) -> Nested:
    """The front's routers for these buckets and those above them (see the
    module's docstring): each bucket, and its rest router to its own shard."""
    namespace = front_namespace(settings.namespace)
    routers: Nested = {}
    for bucket in sorted(with_parents(buckets)):
        fragment = bucket_fragment(
            bucket,
            namespace=namespace,
            entrypoint=settings.entrypoint,
            tls=settings.tls,
            pin_host=settings.pin_host,
            fallback=None,
            error_middleware="",
        )
        name = bucket_name(bucket, namespace)
        service = shard_service_name(settings.namespace, shard_of(bucket, shards))
        own = fragment["http"]["routers"]
        own[rest_name(bucket, namespace)] = {
            "rule": "PathPrefix(`/`)",
            "priority": 1,
            "service": service,
            "parentRefs": [name],
        }
        routers.update(own)
    return {"http": {"routers": routers}} if routers else {}


def front_tree_steps(tree: Nested) -> list[Nested]:
    """A front tree (:func:`front_tree`) as writes to send one after another,
    children before their parents: per level, deepest first, the rests, then
    the buckets. A router whose parent is not written yet is left out by
    Traefik, so a new bucket becomes reachable only once everything under it
    is there. Written parents first instead, a split of two levels at once
    (``/user/a`` gains ``/user/al`` and ``/user/alx``) could be read with
    ``/user/al`` and its rest but not ``/user/alx``: ``/user/alx/``'s
    requests then went to the shard of ``/user/al``, which does not hold it."""
    routers = (tree.get("http") or {}).get("routers") or {}
    steps: list[Nested] = []
    for level in sorted({tree_level(name) for name in routers}, reverse=True):
        at = {name: router for name, router in routers.items() if tree_level(name) == level}
        rests = {name: router for name, router in at.items() if not is_bucket_router(name)}
        buckets = {name: router for name, router in at.items() if is_bucket_router(name)}
        steps += [{"http": {"routers": part}} for part in (rests, buckets) if part]
    return steps


class Move(msgspec.Struct, frozen=True):
    """A stored route that is not where the layout puts it: set it in
    ``to`` (a shard, or None for every place that holds flat routes), then
    delete it from ``drop`` (stores that hold it but should not)."""

    route: Route
    to: tuple[int | None, ...]
    drop: tuple[int | None, ...]


def misplaced(
    held: Mapping[int | None, Iterable[Route]],
    settings: Settings,
    shards: int,
    host_routing: bool = False,
    layout: RouteTable | None = None,
) -> list[Move]:
    """What must move so that every route is where K = ``shards`` puts it.

    ``held`` maps each store to the routes its records hold: None for the
    front's, k for shard k's (including shards beyond the new K, whose
    stores are left over from a larger K). A user route belongs to
    :func:`route_shard` alone; any other route to the front and every shard
    below K. With ``shards = 0`` every route belongs to the front alone. A
    host route that :func:`route_shard` refuses raises, before anything
    moves. When two stores hold different versions of a route (a write
    interrupted between them), the one its own place holds wins, else the
    front's. ``layout``: the front's tree over every held route (see
    :func:`route_shard`).
    """
    places: dict[str, dict[int | None, Route]] = {}
    for store, routes in held.items():
        for route in routes:
            places.setdefault(route.routespec, {})[store] = route
    every: tuple[int | None, ...] = (None, *range(shards))
    moves: list[Move] = []
    for routespec in sorted(places):
        found = places[routespec]
        k = route_shard(routespec, settings, shards, host_routing, layout) if shards else None
        wanted = every if k is None else (k,)
        canonical = next((found[s] for s in wanted if s in found), None)
        if canonical is None:
            canonical = found.get(None) or found[min(found, key=_order)]
        to = tuple(s for s in wanted if found.get(s) != canonical)
        drop = tuple(sorted((s for s in found if s not in wanted), key=_order))
        if to or drop:
            moves.append(Move(canonical, to, drop))
    return moves


def _order(store: int | None) -> int:
    return -1 if store is None else store
