"""InMemoryStore: a dict behind the KVStore interface, for unit tests only.

It stands in for a real store (etcd, Redis, Consul) only to unit-test the
logic TKvProxy adds on top of any store - the write plan it sends, retries,
outages, deadlines, error messages and restoring the Hub's own config -
without servers. Its knobs make it fail the way real stores do. It is not a
model of any real store's behaviour beyond the KVStore interface; the
real-server tests (tests/test_kv.py, tests/test_store_outage.py) cover those.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from traitlets import Unicode

from traefik_proxy.core import TxnLimits
from traefik_proxy.kv import TKvProxy
from traefik_proxy.stores.base import KVStore, url_label, url_secrets


class InMemoryStoreDown(ConnectionError):
    """What InMemoryStore raises while it is "down"; it counts as an outage."""


class InMemoryStore(KVStore):
    """Keys in a dict; every call is one atomic step, logged in ``calls``."""

    def __init__(self, url: str = "memory://in-memory", password: str = "", limits=TxnLimits()):
        super().__init__(label=url_label("memory", url), secrets=url_secrets(url, password))
        self.limits = limits
        self.data: dict[str, str] = {}
        #: ("set", {key: value}) / ("delete", [keys]) / ("get_tree", prefix), as applied
        self.calls: list[tuple[str, object]] = []
        self.attempts = 0
        self._password = password
        self._index = False  # like the Redis store's key index: "this Hub wrote here"
        self._down_until = 0.0
        self._hang = False
        self._refuse: Exception | None = None
        self._fail_after: int | None = None
        self.closed = 0

    # ------------------------------------------------------------ knobs

    def go_down(self, seconds: float) -> None:
        """Refuse connections for ``seconds``."""
        self._down_until = time.monotonic() + seconds

    def hang(self, hanging: bool = True) -> None:
        """Accept calls but never answer (a stopped process)."""
        self._hang = hanging

    def refuse(self, error: Exception | None) -> None:
        """Answer every call with ``error`` (e.g. a permission error)."""
        self._refuse = error

    def go_down_after(self, calls: int) -> None:
        """Answer ``calls`` more calls, then go down for good."""
        self._fail_after = calls

    def lose_everything(self) -> None:
        """What a Redis restarted without persistence looks like."""
        self.data.clear()
        self._index = False

    # ------------------------------------------------------------ KVStore

    async def _enter(self) -> None:
        self.attempts += 1
        if self._fail_after is not None:
            if self._fail_after <= 0:
                self._down_until = float("inf")
            self._fail_after -= 1
        if self._hang:
            await asyncio.Event().wait()
        if time.monotonic() < self._down_until:
            # real clients put the URL, credentials and all, in such messages
            raise InMemoryStoreDown(f"connection refused by memory://hub:{self._password}@in-memory")
        if self._refuse is not None:
            raise self._refuse

    async def set(self, values: Mapping[str, str]) -> bool:
        await self._enter()
        had, self._index = self._index, True
        self.data.update(values)
        self.calls.append(("set", dict(values)))
        return had

    async def delete(self, keys: list[str]) -> None:
        await self._enter()
        for key in keys:
            if key.endswith(self.separator):
                for doomed in [k for k in self.data if k.startswith(key)]:
                    del self.data[doomed]
            else:
                self.data.pop(key, None)
        self.calls.append(("delete", list(keys)))

    async def get_tree(self, prefix: str) -> dict[str, str]:
        await self._enter()
        self.calls.append(("get_tree", prefix))
        return {k: v for k, v in self.data.items() if k.startswith(prefix)}

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, InMemoryStoreDown)

    async def close(self) -> None:
        self.closed += 1


class InMemoryKvProxy(TKvProxy):
    """A TKvProxy wired to an InMemoryStore (``memory_store``); never starts traefik."""

    provider_name = "memory"
    memory_url = Unicode("memory://in-memory")

    def __init__(self, memory_store: InMemoryStore, **kwargs):
        super().__init__(**kwargs)
        self.memory_store = memory_store

    def _make_store(self) -> KVStore:
        return self.memory_store
