"""The route tree: where each route's router hangs in Traefik's multi-layer routing.

Traefik tries the routers of an entrypoint one by one, highest priority first
(its ``pkg/muxer/http``), so with every route on the public entrypoint a
request costs one rule check per route: the Hub's catch-all ``/``, last in
line, is checked after every user's router. Traefik >= 3.6 routes in layers
instead: a router with ``parentRefs`` is matched only inside its parent's own
muxer, after the parent matched.

So a route ``/user/alice/`` hangs under a *bucket* per leading character of
the user segment: ``/user/a`` on the entrypoint, ``/user/al`` under it, the
route under that. A request costs one check per bucket at each level (at most
the alphabet's size) plus the routes of its bucket: about 100 checks at
10,000 users instead of 20,000.

Which segment is bucketed is ``Settings.tree_segment`` (0-based; 1 for
``/user/<name>/``, one more per segment of JupyterHub's ``base_url``). A
route with no more segments than that stays *flat* on the entrypoint: the
Hub's ``/``, ``/user/``, ``/hub/``. A bucket is a pure function of its route,
so adding a route writes its own keys (and its buckets, when they are new)
and never moves other routes.

Longest prefix still wins:

- within a bucket, routers are ordered by length as before;
- a bucket's priority is its prefix's length, above every flat route that is
  a prefix of it, and two buckets that both match a request nest;
- a request that enters a bucket and matches none of its routes goes to the
  bucket's *rest* router (priority 1), whose service is the longest flat route
  that is a prefix of the bucket: the one the request reaches without buckets.

Host routes (``alice.hub.example/...``, JupyterHub's ``subdomain_host``) hang
under buckets of their first label's leading characters within their domain
instead (``HostRegexp`` of ``^a[^.]*`` then ``^al[^.]*``, each followed by
``\\.hub\\.example$``), so a bucket never takes another domain's requests (another
Hub's, on the same Traefik). A host bucket outranks every path route, and
holds a copy of every path-only route beside its host routes (a path-only
route matches any host), so inside it the longest match wins exactly as it
does without the tree. With JupyterHub's subdomains every route has a host,
so the copies are few or none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .routespec import Route, _decode_path, route_name, split_routespec

_Nested = dict[str, Any]


#: a host bucket's priority: above every route's (lengths of at most a few thousand)
HOST_BUCKET_PRIORITY = 1_000_000


class Bucket(msgspec.Struct, frozen=True, order=True):
    """A node of the tree: every bucketed route whose decoded path (or, for a
    host bucket, whose lower-case hostname) starts with ``prefix``."""

    prefix: str  # decoded path, e.g. "/user/al"; or a host's first label's start, "al"
    level: int  # 1 on the entrypoint, 2 under a level-1 bucket, ...
    host: bool = False
    #: a host bucket's domain, after the first label: "hub.example" for
    #: alice.hub.example, so that it never takes another domain's requests
    domain: str = ""

    @property
    def parent(self) -> "Bucket":
        return Bucket(self.prefix[:-1], self.level - 1, self.host, self.domain)

    @property
    def directory(self) -> str:
        """The part before the bucketed segment: ``/user/al`` → ``/user/``."""
        return self.prefix[: self.prefix.rindex("/") + 1]


def bucket_chain(routespec: str, tree_segment: int, tree_depth: int) -> list[Bucket]:
    """The buckets a normalized routespec hangs under, outermost first; [] if flat."""
    if tree_depth <= 0:
        return []
    host, path = split_routespec(routespec)
    if host:
        hostname = host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()
        label, _, domain = hostname.partition(".")
        return [
            Bucket(label[:k], k, True, domain) for k in range(1, min(tree_depth, len(label)) + 1)
        ]
    segments = _decode_path(routespec, path).strip("/").split("/")
    if len(segments) <= tree_segment or segments == [""]:
        return []
    directory = "/" + "".join(s + "/" for s in segments[:tree_segment])
    name = segments[tree_segment]
    return [
        Bucket(directory + name[:k], k) for k in range(1, min(tree_depth, len(name)) + 1)
    ]


#: between the namespace and the rest of a bucket's name: a route's name never
#: has two hyphens in a row there (its slug collapses runs of them)
TREE_MARK = "--tree-"


def bucket_name(bucket: Bucket, namespace: str) -> str:
    """The Traefik router name of a bucket (``[A-Za-z0-9-]``, unique per prefix,
    never the name of a route)."""
    if bucket.host:
        digest = hashlib.sha256(f"host:{bucket.prefix}:{bucket.domain}".encode()).hexdigest()[:16]
        return f"{namespace}{TREE_MARK}{bucket.level}h-{digest}"
    digest = hashlib.sha256(bucket.prefix.encode()).hexdigest()[:16]
    return f"{namespace}{TREE_MARK}{bucket.level}-{digest}"


def is_tree_router(name: str) -> bool:
    """Is a router name a bucket's or a bucket's rest (of any namespace)?"""
    return TREE_MARK in name


def rest_name(bucket: Bucket, namespace: str) -> str:
    """The router name of a bucket's catch-all (its *rest*)."""
    return bucket_name(bucket, namespace) + "-rest"


def copy_name(bucket: Bucket, route_router: str, namespace: str) -> str:
    """The name of a host bucket's copy of a path-only route's router."""
    return f"{bucket_name(bucket, namespace)}-via-{route_router}"


def tree_level(name: str) -> int:
    """The level of a route-tree router from its name (its bucket's level)."""
    return int(re.match(r"\d+", name.split(TREE_MARK, 1)[1]).group())


def is_bucket_router(name: str) -> bool:
    """A bucket itself, not its rest nor one of its copies."""
    return is_tree_router(name) and not name.endswith("-rest") and "-via-" not in name


def fallback_route(bucket: Bucket, flat: Iterable[str]) -> str | None:
    """The routespec a request that enters ``bucket`` but matches none of its
    routes reaches: the longest flat path routespec that is a prefix of the
    bucket's directory (``/`` for ``/user/al`` when ``/user/`` is not a route)."""
    best: str | None = None
    for routespec in flat:
        host, path = split_routespec(routespec)
        if host:
            continue
        decoded = _decode_path(routespec, path)
        if bucket.directory.startswith(decoded) and (best is None or len(decoded) > best_length):
            best, best_length = routespec, len(decoded)
    return best


def bucket_fragment(
    bucket: Bucket,
    *,
    namespace: str,
    entrypoint: str,
    tls: bool,
    pin_host: str,
    fallback: Route | None,
    error_middleware: str,
) -> _Nested:
    """The routers of one bucket: the bucket, and its rest when a fallback exists.

    ``error_middleware`` goes on the rest unless the fallback is the Hub's own
    route, as it does on the fallback route's own router."""
    name = bucket_name(bucket, namespace)
    rule = f"PathPrefix(`{bucket.prefix}`)"
    priority = len(bucket.prefix)
    if bucket.host:
        # the first label starts with the prefix; the rest is exactly the domain
        domain = re.escape("." + bucket.domain) if bucket.domain else ""
        rule = f"HostRegexp(`^{re.escape(bucket.prefix)}[^.]*{domain}$`)"
        priority = HOST_BUCKET_PRIORITY
    elif pin_host:  # as traefik_rule and route_priority pin a path route
        rule = f"Host(`{pin_host.rsplit(':', 1)[0] if ':' in pin_host else pin_host}`) && ({rule})"
        priority += len(pin_host) + 1
    router: _Nested = {"rule": rule, "priority": priority}
    if bucket.level == 1:
        router["entryPoints"] = [entrypoint]
        if tls:
            router["tls"] = {}
    else:
        router["parentRefs"] = [bucket_name(bucket.parent, namespace)]
    routers: _Nested = {name: router}
    if fallback is not None:
        rest: _Nested = {
            "rule": "PathPrefix(`/`)",
            "priority": 1,
            "service": route_name(fallback.routespec, namespace),
            "parentRefs": [name],
        }
        if error_middleware and not fallback.data.get("hub"):
            rest["middlewares"] = [error_middleware]
        routers[rest_name(bucket, namespace)] = rest
    return {"http": {"routers": routers}}


class RouteTable:
    """What the tree needs to know about the routes already written.

    The routes by routespec; how many routes hang under each bucket, so that a
    batch writes only the buckets that are new and deletes the ones it
    empties; and the flat and the path-only routes, which buckets fall back to
    and host buckets copy. In memory only: the shell fills it from the
    store's route records. Kept up to date route by route, never recomputed.
    """

    def __init__(self, routes: Iterable[Route] = (), *, tree_segment: int, tree_depth: int):
        self.tree_segment = tree_segment
        self.tree_depth = tree_depth
        self.routes: dict[str, Route] = {}
        self.users: dict[Bucket, int] = {}
        #: routes on the entrypoint itself (no bucket); path-only routes
        self.flat: dict[str, Route] = {}
        self.path_only: dict[str, Route] = {}
        for route in routes:
            self._put(route)

    def chain(self, routespec: str) -> list[Bucket]:
        return bucket_chain(routespec, self.tree_segment, self.tree_depth)

    def _put(self, route: Route) -> None:
        routespec = route.routespec
        chain = self.chain(routespec)
        if routespec not in self.routes:
            for bucket in chain:
                self.users[bucket] = self.users.get(bucket, 0) + 1
        self.routes[routespec] = route
        if not chain:
            self.flat[routespec] = route
        if routespec.startswith("/"):
            self.path_only[routespec] = route

    def _drop(self, routespec: str) -> None:
        if self.routes.pop(routespec, None) is not None:
            for bucket in self.chain(routespec):
                self.users[bucket] -= 1
                if not self.users[bucket]:
                    del self.users[bucket]
        self.flat.pop(routespec, None)
        self.path_only.pop(routespec, None)

    def after(self, final_ops: Iterable[tuple[str, Route | None]]) -> "RouteTable":
        """A copy with ``(routespec, route or None to delete)`` applied."""
        table = RouteTable(tree_segment=self.tree_segment, tree_depth=self.tree_depth)
        table.routes = dict(self.routes)
        table.users = dict(self.users)
        table.flat = dict(self.flat)
        table.path_only = dict(self.path_only)
        for routespec, route in final_ops:
            if route is None:
                table._drop(routespec)
            else:
                table._put(route)
        return table
