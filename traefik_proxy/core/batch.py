"""Coalescing: many add/delete requests → one change to the dynamic config.

Concurrent ``add_route``/``delete_route`` calls queue up while a write is in
flight; the next write applies all of them at once. Per routespec the last
request wins (add then delete of one route ends deleted), so a batch becomes
one set of subtrees to merge and one set to delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from .api import Expected
from .config import (
    KeyPath,
    Nested,
    Settings,
    apply_changes,
    effective_priority,
    flatten,
    route_fragment,
    route_paths,
    route_record,
)
from .routespec import Route, decode_route, route_name, route_priority
from .routing import (
    TREE_MARK,
    Bucket,
    RouteTable,
    bucket_fragment,
    bucket_name,
    copy_name,
    fallback_route,
    rest_name,
)


class Op(msgspec.Struct, frozen=True):
    """One requested change: add (with its validated route) or delete a routespec."""

    kind: Literal["add", "delete"]
    routespec: str
    route: Route | None = None


class Changes(msgspec.Struct, kw_only=True):
    """One write to a store, computed from a batch of ops.

    ``merge``/``delete`` are Traefik's dynamic config (nested; subtree paths);
    ``records``/``drop_records`` are JupyterHub's route records by route name.
    Routes in ``merge`` and in ``delete`` are disjoint.
    """

    merge: Nested = {}
    delete: list[KeyPath] = []
    records: dict[str, str] = {}
    drop_records: list[str] = []

    def apply_to(self, document: Nested, records_key: str = "jupyterhub") -> Nested:
        """This change applied to a single document holding both sections.

        The document is Traefik's dynamic config with the route records under
        ``document[records_key]["routes"]`` (the file provider's layout).
        """
        delete = list(self.delete) + [(records_key, "routes", n) for n in self.drop_records]
        merge = dict(self.merge)
        if self.records:
            merge[records_key] = {"routes": dict(self.records)}
        return apply_changes(document, merge, delete)


def net_ops(ops: Iterable[Op]) -> dict[str, Op]:
    """The last op per routespec, in first-seen order of routespecs."""
    final: dict[str, Op] = {}
    for op in ops:
        final[op.routespec] = op
    return final


def final_routes(ops: Iterable[Op]) -> list[tuple[str, Route | None]]:
    """``(routespec, route, or None if deleted)`` per routespec, net of a batch."""
    return [(r, op.route if op.kind == "add" else None) for r, op in net_ops(ops).items()]


def empty_table(settings: Settings) -> RouteTable:
    """A route table that knows no routes (every bucket a batch touches is written)."""
    return RouteTable(
        tree_segment=settings.tree_segment,
        tree_depth=settings.tree_depth,
        bucket_size=settings.tree_bucket_size,
    )


def changes_for(ops: Iterable[Op], settings: Settings, table: RouteTable | None = None) -> Changes:
    """The store change that carries out a batch of ops.

    ``table`` holds the routes already written (the route tree needs them:
    which buckets exist, which flat routes the buckets fall back to); without
    it every bucket the batch touches is written as new.
    """
    return plan_batch(ops, settings, table)[0]


def plan_batch(
    ops: Iterable[Op], settings: Settings, table: RouteTable | None = None
) -> tuple[Changes, RouteTable]:
    """:func:`changes_for`, and the route table once the change is written."""
    ops = list(ops)
    final = net_ops(ops)
    before = table if table is not None else empty_table(settings)
    after = before.after(final_routes(ops))
    changes = Changes(merge={}, delete=[], records={}, drop_records=[])
    merge: Nested = {}
    for op in final.values():
        if op.kind == "add":
            assert op.route is not None
            _merge_into(merge, route_fragment(op.route, settings, after.hangs_in(op.routespec)))
            name, record = route_record(op.route, settings)
            changes.records[name] = record
        else:
            changes.delete.extend(route_paths(op.routespec, settings))
            changes.drop_records.append(route_name(op.routespec, settings.namespace))
    merge, tree_delete = _tree_changes(before, after, settings, merge, list(final), table is None)
    changes.merge = merge
    changes.delete.extend(tree_delete)
    return changes, after


def _tree_changes(
    before: RouteTable,
    after: RouteTable,
    settings: Settings,
    merge: Nested,
    touched: list[str],
    unknown: bool,
) -> tuple[Nested, list[KeyPath]]:
    """Buckets to write and to delete: new buckets are written, emptied ones
    deleted; when the flat routes change every path bucket's rest follows
    (it points at the longest flat route above it), and when the path-only
    routes change every host bucket's copies follow."""
    flat_changed = unknown or _changed(before.flat, after.flat, touched)
    path_changed = unknown or _changed(before.path_only, after.path_only, touched)
    delete: list[KeyPath] = []
    # every bucket when the flat or path-only routes changed (rests, copies);
    # else only those that are new or hang elsewhere
    candidates = [
        bucket
        for bucket, parent in after.parents.items()
        if flat_changed or path_changed or bucket not in before.parents or before.parents[bucket] != parent
    ]
    for bucket in sorted(candidates):
        parent = after.parents[bucket]
        new = bucket not in before.parents
        moved = not new and before.parents[bucket] != parent
        if bucket.host:
            if new:
                _host_bucket(bucket, parent, after.path_only, settings, merge)
                continue
            if moved:
                _merge_into(merge, _fragment(bucket, parent, settings, None))
            if path_changed:
                delete += _host_copies(bucket, before, after, touched, settings, merge)
            continue
        if not new and not moved and not flat_changed:
            continue
        fallback_spec = fallback_route(bucket, after.flat)
        fallback = after.flat[fallback_spec] if fallback_spec is not None else None
        _merge_into(merge, _fragment(bucket, parent, settings, fallback))
        rest = rest_name(bucket, settings.namespace)
        if not new:
            # an existing rest: drop what the new one lacks
            if fallback is None:
                delete.append(("http", "routers", rest))
            elif "middlewares" not in merge["http"]["routers"][rest]:
                delete.append(("http", "routers", rest, "middlewares"))
    # routes whose bucket split, merged or moved: only their parentRefs change
    ops = set(touched)
    for routespec, bucket in after.moved(before):
        if routespec not in ops:
            name = route_name(routespec, settings.namespace)
            moved_router = {"parentRefs": [bucket_name(bucket, settings.namespace)]}
            merge.setdefault("http", {}).setdefault("routers", {})[name] = moved_router
    for bucket in sorted(b for b in before.parents if b not in after.parents):
        names = [bucket_name(bucket, settings.namespace)]
        if bucket.host:
            names += [_copy(bucket, r, settings)[0] for r in before.path_only.values()]
        else:
            names.append(rest_name(bucket, settings.namespace))
        delete += [("http", "routers", name) for name in names]
    return merge, delete


def _fragment(bucket: Bucket, parent: Bucket | None, settings: Settings, fallback: Route | None) -> Nested:
    return bucket_fragment(
        bucket,
        namespace=settings.namespace,
        entrypoint=settings.entrypoint,
        tls=settings.tls,
        pin_host=settings.pin_host,
        fallback=fallback,
        error_middleware=settings.error_middleware,
        parent=parent,
    )


def _host_bucket(
    bucket: Bucket,
    parent: Bucket | None,
    path_only: dict[str, Route],
    settings: Settings,
    merge: Nested,
) -> None:
    """Write a new host bucket with a copy of every path-only route."""
    _merge_into(merge, _fragment(bucket, parent, settings, None))
    routers = merge["http"]["routers"]
    for route in path_only.values():
        name, router = _copy(bucket, route, settings)
        routers[name] = router


def _host_copies(
    bucket: Bucket,
    before: RouteTable,
    after: RouteTable,
    touched: list[str],
    settings: Settings,
    merge: Nested,
) -> list[KeyPath]:
    """Bring an existing host bucket's copies of the touched path-only routes
    up to date: write the new or changed ones; return the paths to delete."""
    routers = merge.setdefault("http", {}).setdefault("routers", {})
    delete: list[KeyPath] = []
    for routespec in touched:
        route, old = after.path_only.get(routespec), before.path_only.get(routespec)
        if route is not None:
            name, router = _copy(bucket, route, settings)
            routers[name] = router
            if old is not None and "middlewares" not in router:
                delete.append(("http", "routers", name, "middlewares"))
        elif old is not None:
            delete.append(("http", "routers", _copy(bucket, old, settings)[0]))
    return delete


def _copy(bucket: Bucket, route: Route, settings: Settings) -> tuple[str, Nested]:
    """A host bucket's copy of a path-only route's router: same rule, priority,
    service and middlewares, hanging under the bucket."""
    name = route_name(route.routespec, settings.namespace)
    router = dict(route_fragment(route, settings)["http"]["routers"][name])
    for key in ("entryPoints", "tls", "parentRefs"):
        router.pop(key, None)
    router["parentRefs"] = [bucket_name(bucket, settings.namespace)]
    # among a host bucket's host routes the default (rule length) would not do
    router["priority"] = route_priority(route.routespec, settings.pin_host)
    return copy_name(bucket, name, settings.namespace), router


def _changed(before: dict[str, Route], after: dict[str, Route], touched: list[str]) -> bool:
    """Did any touched routespec come, go, or become or stop being the Hub's?"""

    def identity(route: Route | None) -> bool | None:
        return None if route is None else bool(route.data.get("hub"))

    return any(identity(before.get(r)) != identity(after.get(r)) for r in touched)


def _merge_into(target: Nested, fragment: Nested) -> None:
    """Merge a freshly built fragment into ``target`` in place (dicts merge)."""
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def expectations(ops: Iterable[Op], settings: Settings, table: RouteTable | None = None) -> list[Expected]:
    """The routes Traefik must show live after a batch (its adds, net);
    ``table``: the route table after it (where the adaptive tree hangs them)."""
    live: list[Expected] = []
    for op in net_ops(ops).values():
        if op.kind != "add":
            continue
        assert op.route is not None
        name = route_name(op.routespec, settings.namespace)
        bucket = table.hangs_in(op.routespec) if table is not None else "fixed"
        router = route_fragment(op.route, settings, bucket)["http"]["routers"][name]
        live.append(
            Expected(
                name=name,
                rule=router["rule"],
                target=op.route.target,
                priority=effective_priority(router),
                entrypoints=tuple(router.get("entryPoints", ())),
                tls="tls" in router,
                parents=tuple(router.get("parentRefs", ())),
            )
        )
    return live


#: router keys a router can stop having: where it hangs (and with what), and
#: its priority (a route moving into a path bucket leaves it to Traefik)
_PLACEMENT_KEYS = ("entryPoints", "tls", "parentRefs", "middlewares", "priority")


def relayout(
    records: Mapping[str, str], stored: Mapping[str, Any], settings: Settings
) -> tuple[Changes, int, int]:
    """(change, routers rewritten, routers removed) that makes a stored dynamic
    config hang every recorded route where ``settings`` say.

    A router whose stored keys differ from what these settings write is
    written again, with the keys it no longer has deleted (a route moving into
    the tree loses ``entryPoints``); buckets (``<namespace>--tree-...``) that no
    route uses go. A service loses ``passHostHeader = true``, which earlier
    versions wrote and which is Traefik's default (a key fewer for Traefik to
    read per route); otherwise services and records are left as they are.
    """
    routes = [decode_route(raw) for raw in records.values()]
    wanted = changes_for([Op("add", r.routespec, r) for r in routes], settings)
    wanted_routers = (wanted.merge.get("http") or {}).get("routers") or {}
    stored_routers = (stored.get("http") or {}).get("routers") or {}
    routers: Nested = {}
    delete: list[KeyPath] = []
    for name, router in wanted_routers.items():
        old = stored_routers.get(name)
        if old is not None and flatten(old) == flatten(router):
            continue
        routers[name] = router
        for key in _PLACEMENT_KEYS:
            if old is not None and key in old and key not in router:
                delete.append(("http", "routers", name, key))
    stored_services = (stored.get("http") or {}).get("services") or {}
    for route in routes:
        name = route_name(route.routespec, settings.namespace)
        balancer = (stored_services.get(name) or {}).get("loadBalancer") or {}
        if str(balancer.get("passHostHeader")).lower() == "true":
            delete.append(("http", "services", name, "loadBalancer", "passHostHeader"))
    tree_prefix = f"{settings.namespace}{TREE_MARK}"
    unused = [n for n in stored_routers if n.startswith(tree_prefix) and n not in wanted_routers]
    delete += [("http", "routers", n) for n in unused]
    merge: Nested = {"http": {"routers": routers}} if routers else {}
    return Changes(merge=merge, delete=delete, records={}, drop_records=[]), len(routers), len(unused)
