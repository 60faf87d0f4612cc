"""Key-value write planning: which keys a change sets and deletes, in which
order, in which transactions. Pure; :class:`traefik_proxy.kv.TKvProxy` carries
the plan out on a store.

Key layout (``sep`` is ``/`` unless configured)::

    {traefik_prefix}/http/routers/<name>/rule ...   Traefik's dynamic config
    {jupyterhub_prefix}/routes/<name>              one JSON route record

A change larger than one transaction of the store is split, and Traefik may
read the store between two transactions, or the store may go away after any
of them. The order makes every such cut harmless:

- set: services, then everything else (middlewares, TLS), then each router
  *together with its route record* in one transaction. A router never
  appears before its service, and a router never appears without its
  record: the Hub lists (and its ``check_routes`` repairs or deletes) every
  route Traefik may serve. Records cannot go last on set without breaking
  that (a cut would leave a served router the Hub does not know about), and
  cannot go first (a cut would leave a record the Hub believes served,
  which ``check_routes`` never rewrites); written with the router, a record
  still means "this route is written", since its service came before.
- delete: routers, then everything else, then services, then records last.
  A cut leaves no router without its service nor without its record; a
  record whose router is gone is what makes the Hub delete the rest again.
- the route tree (:mod:`.routing`): its routers go before the routes that
  hang under them on set and after them on delete, so no router is ever
  without its parent. A change that sets and deletes sets first: a bucket's
  catch-all moves to its new fallback before the old fallback's service goes.

Steps: :func:`plan_set_steps` groups the transactions of a set into steps
that go one after the other, the transactions of one step in any order (the
shell sends them at once). A step holds only transactions that commute:
services and other keys alone, or whole routers each with its record. Route
tree routers, and the pieces of a unit split for the limits, are steps of
their own. So a large batch is a few steps, each of many transactions, and
every cut of any interleaving is still one of the cuts above.

Transactions respect the store's :class:`TxnLimits`. The one exception: a
unit (one key, or a router with its record) that exceeds the limits even
alone in a transaction is split key by key, record last, and a single key
larger than ``max_bytes`` goes alone in a transaction of its own (the store
then accepts or refuses it; there is nothing smaller to send).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .batch import Changes
from .config import flatten
from .routing import is_bucket_router, is_tree_router, tree_level

#: Bytes counted per operation beside its key and value (the request's framing).
OP_OVERHEAD = 16

#: Protocol sections of Traefik's dynamic config that have routers and services.
_PROTOCOLS = ("http", "tcp", "udp")


class KeyLayout(msgspec.Struct, frozen=True, kw_only=True):
    """Where a Hub's keys live in a key-value store."""

    traefik_prefix: str = "traefik"
    jupyterhub_prefix: str = "jupyterhub"
    sep: str = "/"

    @property
    def routes_prefix(self) -> str:
        """The prefix of every route record key (ends with the separator)."""
        return f"{self.jupyterhub_prefix}{self.sep}routes{self.sep}"

    def record_key(self, name: str) -> str:
        return self.routes_prefix + name

    def traefik_key(self, path: Iterable[str]) -> str:
        return self.sep.join([self.traefik_prefix, *path])

    def traefik_keys(self, config: Mapping[str, object]) -> dict[str, str]:
        """A nested dynamic config as the flat keys Traefik reads."""
        return flatten(config, self.sep, self.traefik_prefix) if config else {}


class TxnLimits(msgspec.Struct, frozen=True):
    """What a store accepts in one transaction; None means no limit."""

    max_ops: int | None = None
    max_bytes: int | None = None


def kv_keys(changes: Changes, layout: KeyLayout) -> tuple[dict[str, str], list[str]]:
    """(keys to set with their values, keys to delete) of one change.

    A key to delete ending in the separator stands for its whole subtree.
    """
    to_set = layout.traefik_keys(changes.merge)
    for name, record in changes.records.items():
        to_set[layout.record_key(name)] = record
    to_delete = [layout.record_key(name) for name in changes.drop_records]
    for path in changes.delete:
        key = layout.traefik_key(path)
        if len(path) > 3:
            # a field of a router or service: a leaf (priority, an empty tls)
            # or a subtree (entryPoints/0): which, the path does not say
            to_delete.append(key)
        to_delete.append(key + layout.sep)
    return to_set, to_delete


def as_flat_tree(tree: Any, prefix: str, sep: str = "/") -> dict[str, str]:
    """What a store's ``_kv_get_tree(prefix)`` returned, as ``{full key: value}``.

    The recipe's stores return that already. jupyterhub-traefik-proxy's
    returned the subtree under ``prefix`` nested (``{"routes": {...}}``):
    that is flattened under the prefix. A plain value is the value of the
    key ``prefix`` itself; bytes are read as UTF-8.
    """
    if isinstance(tree, bytes):
        tree = tree.decode()
    if isinstance(tree, str):
        return {prefix: tree}
    if not tree:
        return {}
    flat = {k: v.decode() if isinstance(v, bytes) else v for k, v in tree.items()}
    if all(isinstance(v, str) and k.startswith(prefix) for k, v in flat.items()):
        return flat
    return flatten(flat, sep, prefix=prefix.rstrip(sep))


def key_role(key: str, layout: KeyLayout) -> tuple[str, str]:
    """(role, name) of a key: role is "router", "service", "record" or "other".

    ``name`` is the router's, service's or record's name ("" for "other").
    """
    if key.startswith(layout.routes_prefix):
        return "record", key[len(layout.routes_prefix) :]
    sep = layout.sep
    head = layout.traefik_prefix + sep
    if key.startswith(head):
        parts = key[len(head) :].split(sep, 3)
        if len(parts) >= 3 and parts[0] in _PROTOCOLS and parts[2]:
            if parts[1] == "routers":
                return "router", parts[2]
            if parts[1] == "services":
                return "service", parts[2]
    return "other", ""


def txn_bytes(key: str, value: str = "") -> int:
    """What one operation counts towards ``TxnLimits.max_bytes``."""
    return len(key.encode()) + len(value.encode()) + OP_OVERHEAD


def plan_set(values: Mapping[str, str], layout: KeyLayout, limits: TxnLimits) -> list[dict[str, str]]:
    """The transactions that set ``values``, in the order to send them."""
    services: list[list[str]] = []
    others: list[list[str]] = []
    routers: dict[str, list[str]] = {}
    records: dict[str, str] = {}
    for key in values:
        role, name = key_role(key, layout)
        if role == "router":
            routers.setdefault(name, []).append(key)
        elif role == "record":
            records[name] = key
        else:
            (services if role == "service" else others).append([key])
    lone_records = []
    for name, key in records.items():
        if name in routers:
            routers[name].append(key)  # last within its unit: see the module doc
        else:
            lone_records.append([key])
    # route-tree routers (a route's parents) before the routes that hang under
    # them, outer levels (shorter prefixes) first, a bucket before its rest
    tree_names = sorted((n for n in routers if is_tree_router(n)), key=lambda n: (tree_level(n), n))
    tree = [routers.pop(name) for name in tree_names]
    units = [*services, *others, *tree, *routers.values(), *lone_records]
    return [{key: values[key] for key in txn} for txn in _pack(units, values, limits)]


def plan_set_steps(
    values: Mapping[str, str], layout: KeyLayout, limits: TxnLimits
) -> list[list[dict[str, str]]]:
    """:func:`plan_set`'s transactions, in steps (see the module doc)."""
    steps: list[list[dict[str, str]]] = []
    last = ""
    for txn in plan_set(values, layout, limits):
        kind = _commuting_kind(txn, layout)
        if kind and kind == last:
            steps[-1].append(txn)
        else:
            steps.append([txn])
        last = kind
    return steps


def _commuting_kind(txn: Mapping[str, str], layout: KeyLayout) -> str:
    """ "prelude" (services and other keys), "routes" (whole routers, each with
    its record, and records), or "" for a transaction that must keep its place."""
    roles = [key_role(key, layout) for key in txn]
    if all(role in ("service", "other") for role, _ in roles):
        return "prelude"
    routers = {name for role, name in roles if role == "router"}
    records = {name for role, name in roles if role == "record"}
    # a route tree's routers have no record: they never commute (their
    # order is outer level first), nor do pieces of a unit split for the
    # limits, nor routers rewritten without their records (a relayout)
    if all(role in ("router", "record") for role, _ in roles) and routers <= records:
        return "routes"
    return ""


_DELETE_RANK = {"router": 0, "other": 1, "service": 2, "record": 3}


def plan_delete(keys: Sequence[str], layout: KeyLayout, limits: TxnLimits) -> list[list[str]]:
    """The transactions that delete ``keys``, in the order to send them."""
    ordered = sorted(keys, key=lambda key: _delete_rank(key, layout))
    return _pack([[key] for key in ordered], {}, limits)


def _delete_rank(key: str, layout: KeyLayout) -> tuple[int, bool, int, bool]:
    # route-tree routers go after the routes hanging under them: inner levels
    # first, a bucket's rest and copies before the bucket
    role, name = key_role(key, layout)
    if role == "router" and is_tree_router(name):
        return (_DELETE_RANK[role], True, -tree_level(name), is_bucket_router(name))
    return (_DELETE_RANK[role], False, 0, False)


def _pack(units: list[list[str]], values: Mapping[str, str], limits: TxnLimits) -> list[list[str]]:
    """Units, in order, into as few transactions as the limits allow."""
    txns: list[list[str]] = []
    size = 0
    for unit in _units_that_fit(units, values, limits):
        cost = sum(txn_bytes(key, values.get(key, "")) for key in unit)
        if txns and _fits(limits, len(txns[-1]) + len(unit), size + cost):
            txns[-1].extend(unit)
            size += cost
        else:
            txns.append(list(unit))
            size = cost
    return txns


def _units_that_fit(
    units: list[list[str]], values: Mapping[str, str], limits: TxnLimits
) -> Iterable[list[str]]:
    # a unit too large for any transaction goes key by key, in its order
    for unit in units:
        cost = sum(txn_bytes(key, values.get(key, "")) for key in unit)
        if len(unit) == 1 or _fits(limits, len(unit), cost):
            yield unit
        else:
            yield from ([key] for key in unit)


def _fits(limits: TxnLimits, ops: int, size: int) -> bool:
    return (not limits.max_ops or ops <= limits.max_ops) and (
        not limits.max_bytes or size <= limits.max_bytes
    )
