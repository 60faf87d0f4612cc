"""etcd v3 as a :class:`~traefik_proxy.stores.base.KVStore`.

The ``etcd3`` client is blocking (gRPC); every call runs in a worker thread so
the Hub's event loop never waits on the network. A call in a thread cannot be
cancelled, so each gRPC call carries the caller's deadline
(:data:`~traefik_proxy.stores.base.store_call_deadline`) as its own timeout.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..core.config import host_port
from ..core.kv import TxnLimits
from ..core.providers import DEFAULT_PORTS, split_endpoints, store_endpoint
from .base import KVStore, store_call_deadline, url_label, url_secrets

T = TypeVar("T")

#: With several endpoints, how long one may take before the call goes to the
#: next. A member whose leader just died holds a write until a new leader is
#: elected, or gives up only after etcd's request timeout (5 s plus two
#: election timeouts); another member usually has the new leader by then.
#: A write cut short here and sent again elsewhere is the same write, and
#: Raft commits it, if at all, before anything written after it.
ENDPOINT_TIMEOUT = 2.0


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
    # gRPC refuses answers over 4 MiB by default: reading every route record
    # of a hub with ~20,000 routes is more than that
    options.setdefault("grpc.max_receive_message_length", 256 * 1024 * 1024)
    kwargs["grpc_options"] = list(options.items())
    return kwargs


class EtcdStore(KVStore):
    """etcd v3 at one or more endpoints of one cluster; ``client_kwargs`` as
    ``etcd3.client()`` takes them.

    ``url`` lists the endpoints comma-separated (``http://e1:2379,http://e2:2379``).
    The ``etcd3`` client talks to one host, so this store keeps one client per
    endpoint and uses one at a time: when it stops answering, the call goes
    to the next endpoint at once, within the same deadline, and the store
    stays there until that one stops answering in turn.
    """

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
        log: logging.Logger | None = None,
    ):
        urls = split_endpoints(url)
        super().__init__(
            label=url_label("etcd", *urls),
            separator=separator,
            secrets=tuple(s for u in urls for s in url_secrets(u, password)),
        )
        self.limits = limits
        self.log = log or logging.getLogger(__name__)
        self._endpoints = [store_endpoint(u, DEFAULT_PORTS["etcd"])[1:] for u in urls]
        self._username = username
        self._kwargs = client_kwargs_for(username, password, client_kwargs or {}, call_timeout)
        self._clients: dict[int, Any] = {}
        #: the endpoint in use (an index into ``_endpoints``)
        self._current = 0
        self._lock = threading.Lock()

    @property
    def _client(self):
        """The client of the endpoint in use (None before its first call)."""
        return self._clients.get(self._current)

    @property
    def client(self):
        """The ``etcd3`` client of the endpoint in use, connected (blocking)."""
        return self._connect(self._current)

    def _connect(self, index: int, renew: bool = False):
        # called in worker threads
        with self._lock:
            client = self._clients.get(index)
            if renew and client is not None:
                self._clients.pop(index).close()
                client = None
            if client is None:
                host, port = self._endpoints[index]
                client = _deadline_client_class()(host=host, port=port, **self._kwargs)
                if not client.uses_secure_channel:
                    # gRPC refuses call credentials on a plaintext channel; etcd3
                    # also sends the auth token as call metadata, which etcd reads
                    client.call_credentials = None
                self._clients[index] = client
            return client

    def _run_on(self, index: int, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` on one endpoint; log in again once if the token expired."""
        import grpc

        try:
            return fn(self._connect(index))
        except grpc.RpcError as e:
            # etcd3 authenticates once; etcd drops idle auth tokens after
            # --auth-token-ttl, so log in again and retry
            details = e.details() if hasattr(e, "details") else e
            if self._username and "auth token" in str(details):
                return fn(self._connect(index, renew=True))
            # the last: etcd's gRPC server, for a request well over
            # --max-request-bytes (its receive limit is that plus 512 KiB)
            refusals = (
                "too many operations in txn",
                "request is too large",
                "received message larger than max",
            )
            if any(refusal in str(details) for refusal in refusals):
                # the server's limits are lower than the proxy's: say which to change
                raise ValueError(
                    f"{self.label} refused a transaction: {details}. Its limits "
                    "(--max-txn-ops, --max-request-bytes) are below the proxy's: lower "
                    "c.TraefikEtcdProxy.etcd_max_txn_ops / etcd_max_txn_bytes, or raise "
                    "the server's limits"
                ) from None
            raise

    def _fail_over(self, index: int, error: BaseException) -> None:
        """Move from endpoint ``index`` to the next one (unless another call did)."""
        with self._lock:
            if self._current != index:
                return
            self._current = (index + 1) % len(self._endpoints)
            following = self._current
        host, port = self._endpoints[index]
        self.log.warning(
            "etcd endpoint %s did not answer (%s); using %s",
            host_port(host, port),
            self.describe_error(error),
            host_port(*self._endpoints[following]),
        )

    async def _call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` in a thread, on each endpoint in turn until one answers."""

        def run():
            # one round of the endpoints at most: TKvProxy._kv_call retries
            # the whole round with backoff until its deadline
            for attempt in range(len(self._endpoints)):
                index = self._current
                try:
                    return self._attempt(index, fn)
                except Exception as e:
                    if len(self._endpoints) == 1 or not self.is_unavailable(e):
                        raise
                    # even when out of time: the next call starts elsewhere
                    self._fail_over(index, e)
                    deadline = store_call_deadline.get()
                    if attempt == len(self._endpoints) - 1 or (
                        deadline is not None and time.monotonic() >= deadline
                    ):
                        raise

        return await asyncio.to_thread(run)

    def _attempt(self, index: int, fn: Callable[[Any], T]) -> T:
        """``fn`` on one endpoint; with others to go to, for ENDPOINT_TIMEOUT at most."""
        if len(self._endpoints) == 1:
            return self._run_on(index, fn)
        deadline = store_call_deadline.get()
        cap = time.monotonic() + ENDPOINT_TIMEOUT
        # the worker thread's own copy of the context: this call only
        token = store_call_deadline.set(cap if deadline is None else min(deadline, cap))
        try:
            return self._run_on(index, fn)
        finally:
            store_call_deadline.reset(token)

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
        if not isinstance(error, grpc.RpcError):
            return False
        # a member that waits for a quorum may hit the call's deadline first,
        # and answers with its own error: UNKNOWN "context deadline exceeded"
        return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or (
            error.code() == grpc.StatusCode.UNKNOWN and "deadline exceeded" in str(error.details())
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
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()
