"""Coalescing: many add/delete requests → one change to the dynamic config.

Concurrent ``add_route``/``delete_route`` calls queue up while a write is in
flight; the next write applies all of them at once. Per routespec the last
request wins (add then delete of one route ends deleted), so a batch becomes
one set of subtrees to merge and one set to delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from .api import Expected
from .config import KeyPath, Nested, Settings, apply_changes, route_fragment, route_paths, route_record
from .routespec import Route, route_name


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


def changes_for(ops: Iterable[Op], settings: Settings) -> Changes:
    """The store change that carries out a batch of ops."""
    changes = Changes(merge={}, delete=[], records={}, drop_records=[])
    http_routers: Nested = {}
    http_services: Nested = {}
    for op in net_ops(ops).values():
        if op.kind == "add":
            assert op.route is not None
            fragment = route_fragment(op.route, settings)["http"]
            http_routers.update(fragment["routers"])
            http_services.update(fragment["services"])
            name, record = route_record(op.route, settings)
            changes.records[name] = record
        else:
            changes.delete.extend(route_paths(op.routespec, settings))
            changes.drop_records.append(route_name(op.routespec, settings.namespace))
    if http_routers:
        changes.merge = {"http": {"routers": http_routers, "services": http_services}}
    return changes


def expectations(ops: Iterable[Op], settings: Settings) -> list[Expected]:
    """The routes Traefik must show live after a batch (its adds, net)."""
    live: list[Expected] = []
    for op in net_ops(ops).values():
        if op.kind != "add":
            continue
        assert op.route is not None
        name = route_name(op.routespec, settings.namespace)
        router = route_fragment(op.route, settings)["http"]["routers"][name]
        live.append(
            Expected(
                name=name,
                rule=router["rule"],
                target=op.route.target,
                priority=router["priority"],
                entrypoints=tuple(router["entryPoints"]),
                tls="tls" in router,
            )
        )
    return live
