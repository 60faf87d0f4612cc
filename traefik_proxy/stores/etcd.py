"""etcd v3 as a :class:`~traefik_proxy.stores.base.KVStore`.

The ``etcd3`` client is blocking (gRPC); every call runs in a worker thread so
the Hub's event loop never waits on the network. A call in a thread cannot be
cancelled, so each gRPC call carries the caller's deadline
(:data:`~traefik_proxy.stores.base.store_call_deadline`) as its own timeout.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..core.kv import TxnLimits
from ..core.providers import DEFAULT_PORTS, store_endpoint
from .base import KVStore, store_call_deadline, url_label, url_secrets

T = TypeVar("T")


@functools.cache
def _deadline_client_class():
    import etcd3

    class DeadlineEtcd3Client(etcd3.Etcd3Client):
        """An etcd3 client whose gRPC calls end by the caller's deadline.

        etcd3 passes ``self.timeout`` to every call. Our calls run in worker
        threads that asyncio cannot cancel: a call queued on a channel that
        is still connecting would otherwise run on after the Hub gave up on
        it, and could apply a change the Hub reported as failed once etcd
        is back. The deadline comes from :data:`store_call_deadline`, which
        ``asyncio.to_thread`` carries into the thread.
        """

        @property
        def timeout(self):
            deadline = store_call_deadline.get()
            if deadline is None:
                return self._timeout
            remaining = max(deadline - time.monotonic(), 0.001)
            return remaining if self._timeout is None else min(self._timeout, remaining)

        @timeout.setter
        def timeout(self, value):
            self._timeout = value

    return DeadlineEtcd3Client


def client_kwargs_for(
    username: str, password: str, extra: Mapping[str, Any], call_timeout: float
) -> dict[str, Any]:
    """The arguments of ``etcd3.client()`` besides host and port."""
    kwargs = dict(extra)
    if username or password:
        kwargs["user"] = username
        kwargs["password"] = password
    # a gRPC call on a worker thread cannot be cancelled: its own deadline
    # keeps a store that stopped answering from holding the thread longer
    # than the Hub waits for it
    kwargs.setdefault("timeout", call_timeout)
    # gRPC backs off reconnecting up to 120 s by default; once etcd is
    # back, the next call should find it within a second
    options = dict(kwargs.get("grpc_options") or ())
    options.setdefault("grpc.initial_reconnect_backoff_ms", 100)
    options.setdefault("grpc.min_reconnect_backoff_ms", 100)
    options.setdefault("grpc.max_reconnect_backoff_ms", 1000)
    kwargs["grpc_options"] = list(options.items())
    return kwargs


class EtcdStore(KVStore):
    """etcd v3 at one endpoint; ``client_kwargs`` as ``etcd3.client()`` takes them."""

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        client_kwargs: Mapping[str, Any] | None = None,
        call_timeout: float = 10,
        limits: TxnLimits = TxnLimits(128, 1_000_000),
        separator: str = "/",
    ):
        super().__init__(
            label=url_label("etcd", url), separator=separator, secrets=url_secrets(url, password)
        )
        self.limits = limits
        _scheme, self._host, self._port = store_endpoint(url, DEFAULT_PORTS["etcd"])
        self._username = username
        self._kwargs = client_kwargs_for(username, password, client_kwargs or {}, call_timeout)
        self._client = None
        self._lock = threading.Lock()

    def _connect(self, renew: bool = False):
        # called in worker threads
        with self._lock:
            if renew and self._client is not None:
                self._client.close()
                self._client = None
            if self._client is None:
                client = _deadline_client_class()(host=self._host, port=self._port, **self._kwargs)
                if not client.uses_secure_channel:
                    # gRPC refuses call credentials on a plaintext channel; etcd3
                    # also sends the auth token as call metadata, which etcd reads
                    client.call_credentials = None
                self._client = client
            return self._client

    async def _call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` in a thread; log in again once if the token expired."""

        def run():
            import grpc

            try:
                return fn(self._connect())
            except grpc.RpcError as e:
                # etcd3 authenticates once; etcd drops idle auth tokens after
                # --auth-token-ttl, so log in again and retry
                details = e.details() if hasattr(e, "details") else e
                if self._username and "auth token" in str(details):
                    return fn(self._connect(renew=True))
                if "too many operations in txn" in str(details) or "request is too large" in str(details):
                    # the server's limits are lower than the proxy's: say which to change
                    raise ValueError(
                        f"{self.label} refused a transaction: {details}. Its limits "
                        "(--max-txn-ops, --max-request-bytes) are below the proxy's: lower "
                        "c.TraefikEtcdProxy.etcd_max_txn_ops / etcd_max_txn_bytes, or raise "
                        "the server's limits"
                    ) from None
                raise

        return await asyncio.to_thread(run)

    async def set(self, values: Mapping[str, str]) -> bool:
        def txn(client):
            ops = [client.transactions.put(k, v) for k, v in values.items()]
            client.transaction(compare=[], success=ops, failure=[])

        await self._call(txn)
        return True  # etcd keeps its data across restarts

    async def delete(self, keys: list[str]) -> None:
        from etcd3.utils import increment_last_byte, to_bytes

        def txn(client):
            ops = []
            for key in keys:
                if key.endswith(self.separator):
                    end = increment_last_byte(to_bytes(key))
                    ops.append(client.transactions.delete(key, range_end=end))
                else:
                    ops.append(client.transactions.delete(key))
            client.transaction(compare=[], success=ops, failure=[])

        await self._call(txn)

    async def get_tree(self, prefix: str) -> dict[str, str]:
        def read(client):
            return {meta.key.decode(): value.decode() for value, meta in client.get_prefix(prefix)}

        return await self._call(read)

    def is_unavailable(self, error: BaseException) -> bool:
        import grpc
        from etcd3.exceptions import ConnectionFailedError, ConnectionTimeoutError

        if isinstance(error, (ConnectionFailedError, ConnectionTimeoutError)):
            return True
        return isinstance(error, grpc.RpcError) and error.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    def describe_error(self, error: BaseException) -> str:
        import grpc

        # etcd3 replaces gRPC's error by a bare "etcd connection failed"; the
        # gRPC error it was raised from says why
        for e in (error, error.__context__):
            if isinstance(e, grpc.RpcError) and hasattr(e, "details"):
                return f"{e.code().name}: {e.details()}"
        return super().describe_error(error)

    async def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
