"""A store made of a proxy's three ``_kv_*`` methods: the seed's extension recipe.

A :class:`~traefik_proxy.kv.TKvProxy` subclass for a store of its own needs
no :class:`~traefik_proxy.stores.KVStore`: implementing
``_kv_atomic_set(to_set)``, ``_kv_atomic_delete(*keys)`` and
``_kv_get_tree(prefix)`` is enough (see ``docs/new-store.md``). This adapter
makes those methods the store. The store's transaction limits are the
proxy's ``kv_txn_limits`` if it has one (a :class:`~traefik_proxy.core.TxnLimits`),
else unknown: every planned transaction then goes to ``_kv_atomic_set`` whole;
connection errors (``OSError``, which includes ``ConnectionError``, and
``TimeoutError``) count as "the store did not answer" and are retried until
``check_route_timeout``; any other error is raised at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.kv import TxnLimits, as_flat_tree
from .base import KVStore


class MethodsStore(KVStore):
    """The three ``_kv_*`` methods of ``proxy``, as a :class:`KVStore`."""

    def __init__(self, proxy: Any):
        super().__init__(label=f"the store of {type(proxy).__name__}", separator=proxy.kv_separator)
        self._proxy = proxy
        self.limits = getattr(proxy, "kv_txn_limits", None) or TxnLimits()

    async def set(self, values: Mapping[str, str]) -> bool:
        await self._proxy._kv_atomic_set(dict(values))
        return True  # whether the store lost our keys cannot be told

    async def delete(self, keys: list[str]) -> None:
        await self._proxy._kv_atomic_delete(*keys)

    async def get_tree(self, prefix: str) -> dict[str, str]:
        return as_flat_tree(await self._proxy._kv_get_tree(prefix), prefix, self.separator)

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, (OSError, TimeoutError))
