"""Consul's KV as a :class:`~traefik_proxy.stores.base.KVStore`.

Writes go through Consul's transaction endpoint (``PUT /v1/txn``), which takes
at most 64 operations (:attr:`ConsulStore.limits`). Reads are one recursive
``GET /v1/kv``. The ACL token (or basic auth, for a Consul behind a proxy
that checks it) goes in a header on every request.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from typing import Any

from ..core.kv import TxnLimits
from ..core.providers import DEFAULT_PORTS, store_endpoint
from .base import KVStore, url_label, url_secrets


class ConsulStore(KVStore):
    """Consul's HTTP API at ``url``; ``client_kwargs`` as ``consul.aio.Consul()`` takes them."""

    limits = TxnLimits(max_ops=64)

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        basic_auth: tuple[str, str] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        separator: str = "/",
    ):
        password = basic_auth[1] if basic_auth else ""
        super().__init__(
            label=url_label("consul", url),
            separator=separator,
            secrets=url_secrets(url, token, password),
        )
        self.url = url
        self._token = token
        self._authorization = (
            "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode() if basic_auth else ""
        )
        self._client_kwargs = dict(client_kwargs or {})
        self._client = None

    @property
    def client(self):
        # made lazily: the aiohttp session must be made inside the running loop
        if self._client is None:
            import consul.aio

            scheme, host, port = store_endpoint(self.url, DEFAULT_PORTS["consul"])
            kwargs: dict[str, Any] = {"host": host, "port": port, "scheme": scheme}
            if self._token:
                kwargs["token"] = self._token
            kwargs.update(self._client_kwargs)
            client = consul.aio.Consul(**kwargs)
            if self._authorization:
                # every request of the client (and our transactions) takes its
                # headers from prepare_headers: basic auth goes there
                token_headers = client.prepare_headers
                client.prepare_headers = lambda token=None: {
                    **token_headers(token),
                    "Authorization": self._authorization,
                }
            self._client = client
        return self._client

    async def _txn(self, ops: list[dict[str, Any]]) -> None:
        from consul.callback import CB

        client = self.client
        try:
            # not consul.txn.put(): it leaves out the ACL token header
            await client.http.put(
                CB.json(), "/v1/txn", data=json.dumps(ops), headers=client.prepare_headers()
            )
        except Exception as e:
            if self.is_unavailable(e):
                raise  # Consul did not answer: TKvProxy retries until its deadline
            # the client's message carries the response body, never the token
            raise RuntimeError(f"Consul transaction at {self.url} failed: {e}") from None

    async def set(self, values: Mapping[str, str]) -> bool:
        await self._txn(
            [
                {"KV": {"Verb": "set", "Key": key, "Value": base64.b64encode(value.encode()).decode()}}
                for key, value in values.items()
            ]
        )
        return True  # a Consul server keeps its data across restarts

    async def delete(self, keys: list[str]) -> None:
        sep = self.separator
        await self._txn(
            [{"KV": {"Verb": "delete-tree" if key.endswith(sep) else "delete", "Key": key}} for key in keys]
        )

    async def get_tree(self, prefix: str) -> dict[str, str]:
        _index, items = await self.client.kv.get(prefix, recurse=True)
        return {
            item["Key"]: (item["Value"] or b"").decode()
            for item in items or []
            if item["Key"].startswith(prefix)
        }

    def is_unavailable(self, error: BaseException) -> bool:
        import aiohttp

        return isinstance(error, (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
