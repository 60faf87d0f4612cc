"""The route tree: where each route's router hangs in Traefik's multi-layer routing.

Traefik tries the routers of an entrypoint one by one, highest priority first
(its ``pkg/muxer/http``), so with every route on the public entrypoint a
request costs one rule check per route: the Hub's catch-all ``/``, last in
line, is checked after every user's router. Traefik >= 3.6 routes in layers
instead: a router with ``parentRefs`` is matched only inside its parent's own
muxer, after the parent matched.

So a route ``/user/alice/`` hangs under *buckets* of leading characters of
the user segment: ``/user/a`` on the entrypoint, and below it buckets of
longer prefixes. A request costs one check per bucket at each level (at most
the alphabet's size) plus the routes of its bucket: about 100 checks at
10,000 users instead of 20,000. Which buckets exist is :class:`RouteTable`'s
layout: *fixed* (the first ``tree_depth`` characters, whatever the names: a
bucket is a pure function of its route, and no route ever moves), or
*adaptive* (``tree_bucket_size``: buckets split when they hold too many
names, so names sharing their start, ``u00042``, do not pile up in one
bucket; an add or delete may move a bucket's worth of other routes).

Which segment is bucketed is ``Settings.tree_segment`` (0-based; 1 for
``/user/<name>/``, one more per segment of JupyterHub's ``base_url``). A
route with no more segments than that stays *flat* on the entrypoint: the
Hub's ``/``, ``/user/``, ``/hub/``.

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
route matches any host), so inside it the match is exactly the one without
the tree: a host route outranks every path-only route, and among each the
longest wins. A host route also outranks every host bucket beside it (a
sub-bucket, which outranks the copies), so host buckets split and merge as
path buckets do. With JupyterHub's subdomains every route has a host but
the Hub's ``/``, so the copies are one per bucket.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .routespec import Route, _decode_path, route_name, split_routespec

_Nested = dict[str, Any]


#: a host bucket's priority (plus its level): above every path route's (lengths
#: of at most a few thousand), below every host route's
#: (``HOST_ROUTE_PRIORITY`` and more), so that in a bucket a
#: host route outranks the sub-buckets beside it, as a path route does
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
    def parent(self) -> Bucket:
        return Bucket(self.prefix[:-1], self.level - 1, self.host, self.domain)

    @property
    def directory(self) -> str:
        """The part before the bucketed segment: ``/user/al`` → ``/user/``."""
        return self.prefix[: self.prefix.rindex("/") + 1]


def bucket_chain(routespec: str, tree_segment: int, tree_depth: int) -> list[Bucket]:
    """The fixed tree's buckets of a normalized routespec (its key's first
    ``tree_depth`` characters, :func:`route_key`), outermost first; [] if flat."""
    key = route_key(routespec, tree_segment) if tree_depth > 0 else None
    if key is None:
        return []
    host, domain, root, name = key
    depth = min(tree_depth, len(name) - root)
    return [Bucket(name[: root + k], k, host, domain) for k in range(1, depth + 1)]


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


#: what follows the namespace in every route-tree router's name: the mark, the level
_TREE_NAME = re.compile(re.escape(TREE_MARK) + r"(\d+)h?-")


def is_tree_router(name: str) -> bool:
    """Is a router name a bucket's, a bucket's rest or copy (of any namespace)?"""
    return _TREE_NAME.search(name) is not None


def rest_name(bucket: Bucket, namespace: str) -> str:
    """The router name of a bucket's catch-all (its *rest*)."""
    return bucket_name(bucket, namespace) + "-rest"


def copy_name(bucket: Bucket, route_router: str, namespace: str) -> str:
    """The name of a host bucket's copy of a path-only route's router."""
    return f"{bucket_name(bucket, namespace)}-via-{route_router}"


def tree_level(name: str) -> int:
    """The level of a route-tree router from its name (its bucket's level)."""
    found = _TREE_NAME.search(name)
    if found is None:
        raise ValueError(f"router name {name!r} is not a route-tree router's")
    return int(found.group(1))


def is_bucket_router(name: str) -> bool:
    """A bucket itself, not its rest nor one of its copies."""
    return is_tree_router(name) and not name.endswith("-rest") and "-via-" not in name


def fallback_route(bucket: Bucket, flat: Iterable[str]) -> str | None:
    """The routespec a request that enters ``bucket`` but matches none of its
    routes reaches: the longest flat path routespec that is a prefix of the
    bucket's directory (``/`` for ``/user/al`` when ``/user/`` is not a route)."""
    best: str | None = None
    best_length = -1
    for routespec in flat:
        host, path = split_routespec(routespec)
        if host:
            continue
        decoded = _decode_path(routespec, path)
        if bucket.directory.startswith(decoded) and len(decoded) > best_length:
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
    parent: Bucket | None | str = "fixed",
) -> _Nested:
    """The routers of one bucket: the bucket, and its rest when a fallback exists.

    ``parent`` is the bucket it hangs under (None: on the entrypoint); by
    default the fixed tree's, its prefix less one character.
    ``error_middleware`` goes on the rest unless the fallback is the Hub's own
    route, as it does on the fallback route's own router."""
    if parent == "fixed":
        parent = bucket.parent if bucket.level > 1 else None
    name = bucket_name(bucket, namespace)
    rule = f"PathPrefix(`{bucket.prefix}`)"
    priority = len(bucket.prefix)
    if bucket.host:
        # the first label starts with the prefix; the rest is exactly the domain
        domain = re.escape("." + bucket.domain) if bucket.domain else ""
        rule = f"HostRegexp(`^{re.escape(bucket.prefix)}[^.]*{domain}$`)"
        # above every route; of two nested host buckets under one parent
        # (while a bucket moves), the longer prefix first
        priority = HOST_BUCKET_PRIORITY + bucket.level
    elif pin_host:  # as traefik_rule and route_priority pin a path route
        rule = f"Host(`{pin_host.rsplit(':', 1)[0] if ':' in pin_host else pin_host}`) && ({rule})"
        priority += len(pin_host) + 1
    router: _Nested = {"rule": rule, "priority": priority}
    if parent is None:
        router["entryPoints"] = [entrypoint]
        if tls:
            router["tls"] = {}
    else:
        assert isinstance(parent, Bucket)
        router["parentRefs"] = [bucket_name(parent, namespace)]
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


@functools.lru_cache(maxsize=1 << 16)
def route_key(routespec: str, tree_segment: int) -> tuple[bool, str, int, str] | None:
    """What the adaptive tree sorts a routespec by: ``(host, domain, root, key)``,
    None if flat.

    A path route's key is its directory and user segment (``/user/alice``,
    root 6: the directory's length); a host route's is its first label
    (``alice``, root 0) within its domain. A bucket's prefix is a prefix of
    the keys it holds, longer than the root. (Cached: route tables ask for a
    route's key many times per change.)"""
    host, path = split_routespec(routespec)
    if host:
        hostname = host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()
        label, _, domain = hostname.partition(".")
        return (True, domain, 0, label) if label else None
    segments = _decode_path(routespec, path).strip("/").split("/")
    if len(segments) <= tree_segment or segments == [""]:
        return None
    directory = "/" + "".join(s + "/" for s in segments[:tree_segment])
    return (False, "", len(directory), directory + segments[tree_segment])


class RouteTable:
    """What the tree needs to know about the routes already written.

    The routes by routespec; the buckets in use and where each hangs, so that
    a batch writes only the buckets that are new or move and deletes the
    ones it empties; and the flat and the path-only routes, which buckets
    fall back to and host buckets copy. In memory only: the shell fills it
    from the store's route records. Kept up to date route by route, never
    recomputed.

    Two layouts (:attr:`bucket_size`):

    - fixed (0): a route hangs under the buckets of its user segment's first
      ``tree_depth`` characters, whatever other routes there are;
    - adaptive (> 0): the layout is a function of the set of keys
      (:func:`route_key`: directory and user name; a host route's first
      label, within its domain). The buckets on
      the entrypoint are those of each first character; a bucket with more
      than ``bucket_size`` keys splits: each next character whose keys are
      two or more makes a bucket one character longer, under it; a key
      alone on its character, or equal to the bucket's prefix, stays in it
      (so a split bucket holds at most one key per character besides its
      own). An add or delete changes buckets only in the part its key goes
      into at the deepest bucket it hangs under both before and after: a
      split or a merge, moving at most ``bucket_size`` + 1 routes. A
      route's buckets are always consecutive prefixes of its key, so in any
      batch a route only moves into a bucket under its own or out into one
      above it (:meth:`moves_are_nested`), and a store cut anywhere between
      the writes serves it (:mod:`..kv` writes parents first and deletes
      them last). Host routes alike: a host route outranks the host
      buckets beside it (``HOST_BUCKET_PRIORITY``), as a path route
      outranks the shorter prefixes of the path buckets beside it.
    """

    def __init__(
        self,
        routes: Iterable[Route] = (),
        *,
        tree_segment: int,
        tree_depth: int,
        bucket_size: int = 0,
    ):
        self.tree_segment = tree_segment
        self.tree_depth = tree_depth
        self.bucket_size = bucket_size if tree_depth > 0 else 0
        self.routes: dict[str, Route] = {}
        #: the buckets in use, each with the bucket it hangs under (None: the entrypoint)
        self.parents: dict[Bucket, Bucket | None] = {}
        #: routes on the entrypoint itself (no bucket); path-only routes
        self.flat: dict[str, Route] = {}
        self.path_only: dict[str, Route] = {}
        # fixed layout: routes under each bucket
        self._users: dict[Bucket, int] = {}
        # adaptive layout: each space's (host?, domain) keys, sorted; the
        # routespecs of each key; the bucket each route hangs in
        self._keys: dict[tuple[bool, str], list[str]] = {}
        self._specs: dict[tuple[bool, str, str], frozenset[str]] = {}
        self._hangs: dict[str, Bucket] = {}
        #: the spaces whose key list is this table's own (a copy shares the others)
        self._owned: set[tuple[bool, str]] = set()
        #: (host?, domain, prefix) parts laid out again by the last :meth:`after`
        self.regions: list[tuple[bool, str, str]] = []
        self._bulk = True  # keys appended, sorted once below
        for route in routes:
            self._put(route)
        self._bulk = False
        for keys in self._keys.values():
            keys.sort()
        if self.bucket_size:
            self._lay_out([(h, d, k[: r + 1]) for (h, d, r, k) in map(self._key, self.routes) if r >= 0])

    # ------------------------------------------------------------ queries

    def chain(self, routespec: str) -> list[Bucket]:
        """The buckets a routespec hangs under, outermost first (adaptive
        layout: as far as buckets exist, for a route not held)."""
        if not self._adaptive(routespec):
            return bucket_chain(routespec, self.tree_segment, self.tree_depth)
        return self._buckets(routespec, self._walk(routespec))

    def hangs_in(self, routespec: str) -> Bucket | None:
        """The bucket a held route hangs in; None if flat."""
        if self._adaptive(routespec):
            return self._hangs.get(routespec)
        chain = self.chain(routespec)
        return chain[-1] if chain else None

    def moved(self, before: RouteTable) -> list[tuple[str, Bucket]]:
        """Routes held before and after whose bucket changed (adaptive layout:
        a split or a merge), with their new bucket, in the order to write them.

        Routes of one key (``/user/alice/`` and ``/user/alice/lab/``) move
        together into the same bucket, and the longer outranks the shorter
        wherever both are. So a store cut between two of them must never hold
        the shorter in the bucket a request enters first while the longer
        waits in the other: into a bucket below, the shorter go first; out
        into one above, the longer go first."""
        moves = []
        for host, domain, prefix in self.regions:
            for key in _under(self._keys.get((host, domain), []), prefix):
                specs = []
                for routespec in self._specs[(host, domain, key)]:
                    old = before._hangs.get(routespec)
                    if old is not None and old != self._hangs[routespec]:
                        deeper = len(self._hangs[routespec].prefix) > len(old.prefix)
                        specs.append(((len(routespec) if deeper else -len(routespec)), routespec))
                moves += [(routespec, self._hangs[routespec]) for _, routespec in sorted(specs)]
        return moves

    def moves_are_nested(self, before: RouteTable) -> bool:
        """Does every route or bucket that moves go under a bucket below its old
        one (in this tree) or above it (in ``before``'s)? Then a store cut
        anywhere serves it: a route outranks a bucket beside it. The layout
        keeps this true for any batch (a property test checks it); a layout
        that skipped characters (buckets of a shared start) would not:
        adding ``bb0`` while ``b`` goes would move ``bb00`` from ``bb`` to a new
        ``bb0`` beside it."""

        def nested(old: Bucket | None, new: Bucket | None) -> bool:
            # the new place below the old one now, or above it before
            return _reaches(self, new, old) or _reaches(before, old, new)

        for routespec, new in self.moved(before):
            if not nested(before._hangs[routespec], new):
                return False
        return all(
            nested(before.parents[bucket], parent)
            for bucket, parent in self.parents.items()
            if bucket in before.parents and before.parents[bucket] != parent
        )

    # ------------------------------------------------------------ updates

    def _put(self, route: Route) -> None:
        routespec = route.routespec
        if routespec not in self.routes:
            if self._adaptive(routespec):
                self._index(routespec, add=True)
            else:
                chain = self.chain(routespec)
                for parent, bucket in zip([None, *chain], chain):
                    self._users[bucket] = self._users.get(bucket, 0) + 1
                    self.parents[bucket] = parent
        self.routes[routespec] = route
        if self._key(routespec)[2] < 0 or not self.tree_depth:
            self.flat[routespec] = route
        if routespec.startswith("/"):
            self.path_only[routespec] = route

    def _drop(self, routespec: str) -> None:
        if self.routes.pop(routespec, None) is not None:
            if self._adaptive(routespec):
                self._index(routespec, add=False)
            else:
                for bucket in self.chain(routespec):
                    self._users[bucket] -= 1
                    if not self._users[bucket]:
                        del self._users[bucket]
                        del self.parents[bucket]
        self.flat.pop(routespec, None)
        self.path_only.pop(routespec, None)

    def after(self, final_ops: Iterable[tuple[str, Route | None]]) -> RouteTable:
        """A copy with ``(routespec, route or None to delete)`` applied."""
        table = RouteTable(
            tree_segment=self.tree_segment,
            tree_depth=self.tree_depth,
            bucket_size=self.bucket_size,
        )
        table.routes = dict(self.routes)
        table.parents = dict(self.parents)
        table.flat = dict(self.flat)
        table.path_only = dict(self.path_only)
        table._users = dict(self._users)
        table._keys = dict(self._keys)  # shared until written (_owned)
        table._specs = dict(self._specs)
        table._hangs = dict(self._hangs)
        regions: list[tuple[bool, str, str]] = []
        for routespec, route in final_ops:
            adaptive = self._adaptive(routespec)
            old = table._walk(routespec) if adaptive else []
            if route is None:
                table._drop(routespec)
            else:
                table._put(route)
            if adaptive:
                new = table._walk(routespec)
                if old != new:
                    regions.append(table._region(routespec, old, new))
                elif route is not None:  # it joins a bucket that stays as it was
                    table._hangs[routespec] = table._buckets(routespec, new[-1:])[0]
        if regions:
            table._lay_out(regions)
        return table

    # ------------------------------------------------------------ adaptive layout

    def _key(self, routespec: str) -> tuple[bool, str, int, str]:
        """:func:`route_key`, with root -1 for a flat route."""
        return route_key(routespec, self.tree_segment) or (False, "", -1, "")

    def _adaptive(self, routespec: str) -> bool:
        """Does the adaptive layout place this route (a bucketed route)?"""
        return bool(self.bucket_size) and self._key(routespec)[2] >= 0

    def _index(self, routespec: str, add: bool) -> None:
        """Add a routespec to (or remove it from) its key's routespecs and the sorted keys."""
        host, domain, root, name = self._key(routespec)
        if root < 0:
            return
        at = (host, domain, name)
        before = self._specs.get(at, frozenset())
        specs = before | {routespec} if add else before - {routespec}
        if bool(specs) != bool(before):
            space = (host, domain)
            if space not in self._owned:  # copy on first write
                self._keys[space] = list(self._keys.get(space, []))
                self._owned.add(space)
            keys = self._keys[space]
            if self._bulk:
                keys.append(name)
            elif specs:
                bisect.insort(keys, name)
            else:
                del keys[bisect.bisect_left(keys, name)]
        if specs:
            self._specs[at] = specs
        else:
            del self._specs[at]
        if not add:
            self._hangs.pop(routespec, None)

    def _buckets(self, routespec: str, walk: list[tuple[str, bool]]) -> list[Bucket]:
        """The buckets of (part of) a routespec's :meth:`_walk`."""
        host, domain, root, _ = self._key(routespec)
        return [Bucket(prefix, len(prefix) - root, host, domain) for prefix, _ in walk]

    def _walk(self, routespec: str) -> list[tuple[str, bool]]:
        """The prefixes of the buckets a routespec hangs under, outermost first,
        each with whether it is split (for a route not held: the buckets its
        key falls into, as far as they go)."""
        host, domain, root, name = self._key(routespec)
        keys = self._keys.get((host, domain), [])
        chain: list[tuple[str, bool]] = []
        for end in range(root + 1, len(name) + 1):
            first, last = _span(keys, name[:end])
            if first == last or (chain and last - first == 1):
                break  # no such key; or one alone, which stays in the bucket above
            split = last - first > self.bucket_size
            chain.append((name[:end], split))
            if not split:
                break
        return chain

    def _region(
        self, routespec: str, old: list[tuple[str, bool]], new: list[tuple[str, bool]]
    ) -> tuple[bool, str, str]:
        """The part in which an add or delete of ``routespec`` may have moved
        buckets or routes. Where its chains first differ: a bucket that split
        or merged (all of its keys), else the part its key goes into at the
        bucket above (its first character's, at the top). A key in another
        part sees the same keys as before."""
        host, domain, root, name = self._key(routespec)
        common = 0
        while common < min(len(old), len(new)) and old[common] == new[common]:
            common += 1
        if common < min(len(old), len(new)) and old[common][0] == new[common][0]:
            return (host, domain, old[common][0])
        end = len(old[common - 1][0]) + 1 if common else root + 1
        return (host, domain, name[:end])

    def _lay_out(self, regions: list[tuple[bool, str, str]]) -> None:
        """Place again every bucket and route in these parts."""
        kept: list[tuple[bool, str, str]] = []
        for region in sorted(set(regions)):  # a part inside an earlier one is covered by it
            if not (kept and kept[-1][:2] == region[:2] and region[2].startswith(kept[-1][2])):
                kept.append(region)
        self.regions = kept
        for host, domain, prefix in kept:
            inside = [
                b
                for b in self.parents
                if (b.host, b.domain) == (host, domain) and b.prefix.startswith(prefix)
            ]
            for bucket in inside:
                del self.parents[bucket]
            for key in _under(self._keys.get((host, domain), []), prefix):
                specs = self._specs[(host, domain, key)]
                chain = self.chain(next(iter(specs)))
                for parent, bucket in zip([None, *chain], chain):
                    self.parents[bucket] = parent
                for routespec in specs:
                    self._hangs[routespec] = chain[-1]


def _reaches(table: RouteTable, bucket: Bucket | None, goal: Bucket | None) -> bool:
    """Is ``goal`` the bucket or above it in ``table``'s tree (None: the entrypoint)?"""
    while bucket is not None and bucket != goal:
        bucket = table.parents.get(bucket)
    return bucket == goal


def _span(keys: list[str], prefix: str) -> tuple[int, int]:
    """Where the sorted keys that start with ``prefix`` are: ``keys[first:last]``."""
    first = bisect.bisect_left(keys, prefix)
    return first, bisect.bisect_left(keys, prefix + "\U0010ffff", first)


def _under(keys: list[str], prefix: str) -> list[str]:
    """The sorted keys that start with ``prefix``."""
    first, last = _span(keys, prefix)
    return keys[first:last]
