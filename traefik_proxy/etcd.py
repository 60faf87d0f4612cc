"""TraefikEtcdProxy: Traefik's dynamic config and the route records in etcd v3.

The ``etcd3`` client is blocking (gRPC); every call runs in a worker thread so
the Hub's event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from traitlets import Integer, Dict, Unicode, validate

from . import core
from .kv import TKvProxy, check_store_url, store_call_deadline


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


class TraefikEtcdProxy(TKvProxy):
    """JupyterHub proxy with Traefik's dynamic config in etcd."""

    provider_name = "etcd"

    etcd_max_txn_ops = Integer(
        128,
        config=True,
        help="""Most operations etcd accepts in one transaction: the server's
        --max-txn-ops (default 128). Larger changes are split, and Traefik
        re-reads its whole prefix after each transaction, so on a large hub
        raise the server's limit and this one together (measured with 10,000
        routes held: 2 rounds of 200 adds and deletes took 65 s split, 22 s
        unsplit).""",
    )

    etcd_max_txn_bytes = Integer(
        1_000_000,
        config=True,
        help="""Largest transaction to send, in bytes of keys and values; keep it
        below the server's --max-request-bytes (default 1.5 MiB).""",
    )

    @property
    def kv_max_txn_ops(self) -> int:
        return self.etcd_max_txn_ops

    @property
    def kv_max_txn_bytes(self) -> int:
        return self.etcd_max_txn_bytes

    etcd_url = Unicode(
        "http://127.0.0.1:2379",
        config=True,
        help="URL of one etcd endpoint (http:// or https://).",
    )
    etcd_username = Unicode("", config=True, help="etcd user (with etcd_password)")
    etcd_password = Unicode("", config=True, help="Password of etcd_username")
    etcd_client_kwargs = Dict(
        config=True,
        help="""Extra arguments of etcd3.client(), e.g. ca_cert, cert_key,
        cert_cert (file paths) for TLS, timeout (seconds per gRPC call;
        default: check_route_timeout, at most 10) or grpc_options. With an
        https etcd_url, ca_cert is required.""",
    )

    @validate("etcd_url")
    def _validate_etcd_url(self, proposal):
        check_store_url(
            "etcd_url", proposal.value, ("http", "https"), "http://host:port or https://host:port"
        )
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._etcd = None
        self._etcd_lock = threading.Lock()

    # ------------------------------------------------------------ client

    def _endpoint(self) -> tuple[str, int]:
        url = urlsplit(self.etcd_url)
        return url.hostname or "127.0.0.1", url.port or 2379

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.etcd_client_kwargs)
        if urlsplit(self.etcd_url).scheme == "https" and not kwargs.get("ca_cert"):
            raise ValueError(
                f"etcd_url {self.etcd_url!r} is https; set c.TraefikEtcdProxy.etcd_client_kwargs "
                "= {'ca_cert': '/path/to/ca.pem'} (and cert_key/cert_cert for client certificates)"
            )
        if self.etcd_username or self.etcd_password:
            kwargs["user"] = self.etcd_username
            kwargs["password"] = self.etcd_password
        # a gRPC call on a worker thread cannot be cancelled: its own deadline
        # keeps a store that stopped answering from holding the thread longer
        # than the Hub waits for it
        kwargs.setdefault("timeout", min(10, self.check_route_timeout))
        # gRPC backs off reconnecting up to 120 s by default; once etcd is
        # back, the next call should find it within a second
        options = dict(kwargs.get("grpc_options") or ())
        options.setdefault("grpc.initial_reconnect_backoff_ms", 100)
        options.setdefault("grpc.min_reconnect_backoff_ms", 100)
        options.setdefault("grpc.max_reconnect_backoff_ms", 1000)
        kwargs["grpc_options"] = list(options.items())
        return kwargs

    def _make_client(self):
        host, port = self._endpoint()
        client = _deadline_client_class()(host=host, port=port, **self._client_kwargs())
        if not client.uses_secure_channel:
            # gRPC refuses call credentials on a plaintext channel; etcd3 also
            # sends the auth token as call metadata, which is what etcd reads
            client.call_credentials = None
        return client

    def _etcd_client(self, renew: bool = False):
        # called in worker threads
        with self._etcd_lock:
            if renew and self._etcd is not None:
                self._etcd.close()
                self._etcd = None
            if self._etcd is None:
                self._etcd = self._make_client()
            return self._etcd

    async def _call(self, fn):
        """Run ``fn(client)`` in a thread; re-authenticate once if the token expired."""

        def run():
            import grpc

            try:
                return fn(self._etcd_client())
            except grpc.RpcError as e:
                # etcd3 authenticates once; etcd drops idle auth tokens after
                # --auth-token-ttl, so log in again and retry
                if self.etcd_username and "auth token" in str(e.details() if hasattr(e, "details") else e):
                    return fn(self._etcd_client(renew=True))
                raise

        return await asyncio.to_thread(run)

    def _kv_unavailable(self, error: BaseException) -> bool:
        import grpc
        from etcd3.exceptions import ConnectionFailedError, ConnectionTimeoutError

        if isinstance(error, (ConnectionFailedError, ConnectionTimeoutError)):
            return True
        return isinstance(error, grpc.RpcError) and error.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    def _kv_describe_error(self, error: BaseException) -> str:
        import grpc

        # etcd3 replaces gRPC's error by a bare "etcd connection failed"; the
        # gRPC error it was raised from says why
        for e in (error, error.__context__):
            if isinstance(e, grpc.RpcError) and hasattr(e, "details"):
                return f"{e.code().name}: {e.details()}"
        return super()._kv_describe_error(error)

    async def _close(self) -> None:
        await super()._close()
        with self._etcd_lock:
            if self._etcd is not None:
                self._etcd.close()
                self._etcd = None

    # ------------------------------------------------------------ static config

    def _setup_traefik_static_config(self, config: dict[str, Any]) -> dict[str, Any]:
        host, port = self._endpoint()
        provider: dict[str, Any] = {
            "endpoints": [core.host_port(host, port)],
            "rootKey": self.kv_traefik_prefix,
        }
        if self.etcd_username:
            provider["username"] = self.etcd_username
        if self.etcd_password:
            provider["password"] = self.etcd_password
        if urlsplit(self.etcd_url).scheme == "https":
            kwargs = self.etcd_client_kwargs
            tls: dict[str, Any] = {}
            for ours, theirs in (("ca_cert", "ca"), ("cert_cert", "cert"), ("cert_key", "key")):
                if kwargs.get(ours):
                    tls[theirs] = kwargs[ours]
            provider["tls"] = tls
        return core.deep_merge(config, {"providers": {"etcd": provider}})

    # ------------------------------------------------------------ store primitives

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        def txn(client):
            ops = [client.transactions.put(k, v) for k, v in to_set.items()]
            client.transaction(compare=[], success=ops, failure=[])

        await self._call(txn)

    async def _kv_atomic_delete(self, *keys: str) -> None:
        from etcd3.utils import increment_last_byte, to_bytes

        sep = self.kv_separator

        def txn(client):
            ops = []
            for key in keys:
                if key.endswith(sep):
                    end = increment_last_byte(to_bytes(key))
                    ops.append(client.transactions.delete(key, range_end=end))
                else:
                    ops.append(client.transactions.delete(key))
            client.transaction(compare=[], success=ops, failure=[])

        await self._call(txn)

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        def read(client):
            return {
                meta.key.decode(): value.decode() for value, meta in client.get_prefix(prefix)
            }

        return await self._call(read)
