"""TKvProxy: Traefik's dynamic config and the route records in a key-value store.

Traefik's KV providers (etcd, Redis, Consul) read the dynamic config as flat
keys under a root key (``traefik/http/routers/<name>/rule``…). This adapter
turns each batch of changes (:class:`traefik_proxy.core.Changes`) into at most
one delete transaction and one set transaction on three store primitives that
a subclass writes: :meth:`TKvProxy._kv_atomic_set`,
:meth:`TKvProxy._kv_atomic_delete` and :meth:`TKvProxy._kv_get_tree`.

JupyterHub's route records live beside Traefik's keys, under
``{kv_jupyterhub_prefix}/routes/<route name>``, each one JSON string, so data
keeps its JSON types in every store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from traitlets import Unicode, validate

from . import core
from .proxy import TraefikProxy


class TKvProxy(TraefikProxy):
    """Base of the proxies whose dynamic config lives in a key-value store.

    Subclasses set ``provider_name``, add their provider to Traefik's static
    config and implement the three ``_kv_*`` primitives.
    """

    #: Most operations the store accepts in one transaction (None: no limit).
    #: Larger changes are split into several transactions, ordered so that
    #: Traefik never sees a router before its service (see ``_set_order``).
    kv_max_txn_ops: int | None = None
    #: Largest request (keys and values, roughly) the store accepts in one
    #: transaction (None: no limit).
    kv_max_txn_bytes: int | None = None

    kv_traefik_prefix = Unicode(
        "traefik",
        config=True,
        help="""The key under which Traefik's dynamic config is written; Traefik's
        provider rootKey. Several Hubs sharing a store need different prefixes.""",
    )
    kv_jupyterhub_prefix = Unicode(
        "jupyterhub",
        config=True,
        help="The key under which JupyterHub's route records are written.",
    )
    kv_separator = Unicode(
        "/",
        config=True,
        help="Separator of key path components; Traefik's KV providers use '/'.",
    )

    @validate("kv_traefik_prefix", "kv_jupyterhub_prefix")
    def _validate_prefix(self, proposal):
        value = proposal.value
        sep = self.kv_separator if "kv_separator" in self._trait_values else "/"
        if not value or value.endswith(sep) or value.startswith(sep):
            raise ValueError(
                f"{proposal.trait.name} {value!r} must be non-empty and must not start or "
                f"end with {sep!r}; e.g. 'traefik' or 'hubs/hub1/traefik'"
            )
        return value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.kv_traefik_prefix == self.kv_jupyterhub_prefix or any(
            a.startswith(b + self.kv_separator)
            for a, b in [
                (self.kv_traefik_prefix, self.kv_jupyterhub_prefix),
                (self.kv_jupyterhub_prefix, self.kv_traefik_prefix),
            ]
        ):
            raise ValueError(
                f"kv_traefik_prefix {self.kv_traefik_prefix!r} and kv_jupyterhub_prefix "
                f"{self.kv_jupyterhub_prefix!r} must not contain each other: Traefik would "
                "read JupyterHub's route records as its config"
            )
        self._kv_write_lock = asyncio.Lock()

    # ------------------------------------------------------------ keys

    @property
    def _routes_prefix(self) -> str:
        sep = self.kv_separator
        return f"{self.kv_jupyterhub_prefix}{sep}routes{sep}"

    def _record_key(self, name: str) -> str:
        return self._routes_prefix + name

    def _traefik_key(self, path: Iterable[str]) -> str:
        return self.kv_separator.join([self.kv_traefik_prefix, *path])

    def _keys_for(self, changes: core.Changes) -> tuple[dict[str, str], list[str]]:
        """(keys to set, keys to delete) of one change; pure given the traitlets."""
        sep = self.kv_separator
        to_set = core.flatten(changes.merge, sep, self.kv_traefik_prefix) if changes.merge else {}
        for name, record in changes.records.items():
            to_set[self._record_key(name)] = record
        to_delete = [self._record_key(name) for name in changes.drop_records]
        to_delete += [self._traefik_key(path) + sep for path in changes.delete]
        return to_set, to_delete

    def _set_order(self, key: str) -> int:
        # when a change is split into several transactions: services before
        # routers (a router whose service is missing is an error in Traefik),
        # route records last (a record means "this route is written").
        # Deletions run in the reverse order.
        sep = self.kv_separator
        if key.startswith(self._routes_prefix):
            return 3
        if key.startswith(self._traefik_key(("http", "routers")) + sep):
            return 2
        if key.startswith(self._traefik_key(("http", "services")) + sep):
            return 0
        return 1

    # ------------------------------------------------------------ seams

    async def _apply_dynamic_config(self, changes: core.Changes) -> None:
        to_set, to_delete = self._keys_for(changes)
        async with self._kv_write_lock:
            if to_delete:
                ordered = sorted(to_delete, key=self._set_order, reverse=True)
                for chunk in self._chunks(ordered):
                    await self._kv_atomic_delete(*chunk)
            if to_set:
                ordered = sorted(to_set, key=self._set_order)
                for chunk in self._chunks(ordered, to_set):
                    await self._kv_atomic_set({k: to_set[k] for k in chunk})

    def _chunks(self, keys: list[str], values: dict[str, str] | None = None) -> list[list[str]]:
        """Split keys into transactions within kv_max_txn_ops and kv_max_txn_bytes."""
        max_ops = self.kv_max_txn_ops or len(keys) or 1
        max_bytes = self.kv_max_txn_bytes
        chunks: list[list[str]] = [[]]
        size = 0
        for key in keys:
            cost = len(key.encode()) + (len(values[key].encode()) if values else 0) + 16
            if chunks[-1] and (len(chunks[-1]) >= max_ops or (max_bytes and size + cost > max_bytes)):
                chunks.append([])
                size = 0
            chunks[-1].append(key)
            size += cost
        return chunks

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        prefix = self._routes_prefix
        tree = await self._kv_get_tree(prefix)
        return {key[len(prefix) :]: value for key, value in tree.items() if key.startswith(prefix)}

    async def _get_route_record(self, name: str) -> str | None:
        key = self._record_key(name)
        return (await self._kv_get_tree(key)).get(key)

    async def _get_traefik_dynamic_config(self) -> dict[str, Any]:
        """Traefik's dynamic config as stored (nested; for tests and debugging)."""
        prefix = self.kv_traefik_prefix + self.kv_separator
        tree = await self._kv_get_tree(prefix)
        return core.unflatten({k[len(prefix) :]: v for k, v in tree.items()}, self.kv_separator)

    # ------------------------------------------------------------ store primitives

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        """Set every key to its value in one transaction."""
        raise NotImplementedError

    async def _kv_atomic_delete(self, *keys: str) -> None:
        """Delete keys in one transaction; a key ending in the separator is a subtree."""
        raise NotImplementedError

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        """Every key starting with ``prefix`` and its value, in one read."""
        raise NotImplementedError
