"""Taking over jupyterhub-traefik-proxy's keys in etcd, Redis or Consul at start.

An operator who switches over keeps the old project's store, and with it its
routers: they carry no priority, so they would outrank ours (see
:mod:`traefik_proxy.takeover`). Before traefik reads the store, at every
start, this reads the few narrow prefixes under which only the old project's
names can be (:func:`traefik_proxy.core.kv_migration_probe`): cheap however
many routes of ours the store holds (with 10,000 routes: 5 ms in etcd,
0.2-0.8 s of SCAN in Redis). Reading both prefixes whole took 4-5 s in Redis
and failed in etcd from about 5,700 routes (an answer over the etcd client's
4 MiB limit). Only when something is there does it read what the plan needs
(:func:`~traefik_proxy.core.kv_migration_reads`), write the old routes our
way through the normal write plan, and then delete the old keys: a Hub killed
between the two leaves both, and the next start's plan finishes the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from . import core

if TYPE_CHECKING:
    from .stores.base import KVStore

    T = TypeVar("T")


class KvMigration:
    """Mixin of :class:`~traefik_proxy.kv.TKvProxy` (see the module's docstring)."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TKvProxy and TraefikProxy, which
        # define it (see kv.py and proxy.py). Nothing here exists at run time.
        kv_traefik_prefix: str
        kv_jupyterhub_prefix: str
        kv_separator: str
        traefik_namespace: str
        _kv_write_lock: asyncio.Lock

        @property
        def settings(self) -> core.Settings: ...
        @property
        def kv_store(self) -> KVStore: ...
        def _kv_deadline(self) -> float: ...
        async def _kv_call(
            self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, deadline: float | None = None
        ) -> T: ...
        async def _kv_write(self, to_set: dict[str, str], to_delete: list[str], deadline: float) -> None: ...
        async def _apply_changes(self, changes: core.Changes) -> None: ...

    async def _migrate_legacy_layout(self) -> core.Migration:
        tp, jp, sep = self.kv_traefik_prefix, self.kv_jupyterhub_prefix, self.kv_separator
        flat = await self._kv_read_anyone(core.kv_migration_probe(tp, jp, sep))
        if not flat:
            return core.Migration()
        flat |= await self._kv_read_anyone(core.kv_migration_reads(tp, jp, sep))
        migration = core.plan_kv_migration(
            flat, traefik_prefix=tp, jupyterhub_prefix=jp, sep=sep, namespace=self.traefik_namespace
        )
        if migration.is_empty():
            return migration
        await self._apply_changes(migration.additions(self.settings))
        subtrees = tuple(migration.kv_removal_keys(tp, jp, sep))
        # as single keys: a store that tracks its own keys (Redis) cannot
        # find others' keys by subtree
        old = [key for key in flat if key.startswith(subtrees)]
        async with self._kv_write_lock:
            await self._kv_write({}, old, self._kv_deadline())
        return migration

    async def _kv_read_anyone(self, prefixes: Iterable[str]) -> dict[str, str]:
        """Every key under the prefixes, ours or written by another program."""
        flat: dict[str, str] = {}
        for prefix in prefixes:
            flat |= await self._kv_call("read", self.kv_store.get_tree_of_anyone, prefix)
        return flat
