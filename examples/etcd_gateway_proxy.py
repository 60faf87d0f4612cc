"""A store of one's own, built by the recipe: etcd through its HTTP/JSON gateway.

The recipe (docs/new-store.md): a TKvProxy subclass needs the settings to
reach its store, its Traefik provider in ``self.static_config``, and three
methods that move flat keys. This one reaches etcd through the JSON gateway
every etcd v3 server answers on its client URL (``/v3/kv/...``, keys and
values base64-encoded), with httpx instead of the etcd3 gRPC client that
:class:`traefik_proxy.etcd.TraefikEtcdProxy` uses. Traefik reads the keys
with its own etcd provider. No authentication or TLS: a sketch of the
recipe, not a replacement for TraefikEtcdProxy.

Use it as ``c.JupyterHub.proxy_class = "etcd_gateway_proxy.EtcdGatewayProxy"``
with this file on the Hub's PYTHONPATH.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import httpx
from traitlets import Unicode

from traefik_proxy.core import TxnLimits
from traefik_proxy.kv import TKvProxy


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(encoded: str) -> str:
    return base64.b64decode(encoded).decode()


def _range_end(prefix: str) -> str:
    """etcd's end of the range of every key starting with ``prefix``."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class EtcdGatewayProxy(TKvProxy):
    """JupyterHub's routes in etcd, written through etcd's JSON gateway."""

    # 1. the settings: where the store is, and Traefik's name of the provider
    provider_name = "etcd"
    gateway_url = Unicode(
        "http://127.0.0.1:2379",
        config=True,
        help="etcd's client URL; its JSON gateway answers under /v3/.",
    )
    # optional: what one transaction may hold (etcd's default --max-txn-ops);
    # without it, every planned transaction goes to _kv_atomic_set whole
    kv_txn_limits = TxnLimits(max_ops=128)

    _client: httpx.AsyncClient | None = None

    # 2. the provider, added to the static config Traefik starts with
    async def _setup_traefik_static_config(self) -> None:
        provider = {"endpoints": [urlsplit(self.gateway_url).netloc], "rootKey": self.kv_traefik_prefix}
        self.static_config.setdefault("providers", {})["etcd"] = provider
        await super()._setup_traefik_static_config()

    # 3. three methods that move flat keys
    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        puts = [{"requestPut": {"key": _b64(k), "value": _b64(v)}} for k, v in to_set.items()]
        await self._post("kv/txn", {"success": puts})

    async def _kv_atomic_delete(self, *keys: str) -> None:
        # a key ending in the separator stands for everything under it
        ops = [
            {"requestDeleteRange": {"key": _b64(key), "range_end": _range_end(key)}}
            if key.endswith(self.kv_separator)
            else {"requestDeleteRange": {"key": _b64(key)}}
            for key in keys
        ]
        await self._post("kv/txn", {"success": ops})

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        answer = await self._post("kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)})
        return {_text(kv["key"]): _text(kv.get("value", "")) for kv in answer.get("kvs", [])}

    # the plumbing: one HTTP client, closed with the proxy
    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.gateway_url, timeout=10)
        try:
            response = await self._client.post(f"/v3/{path}", json=body)
        except httpx.TransportError as e:
            # a ConnectionError says "the store did not answer": retried until
            # check_route_timeout; any other error fails the call at once
            raise ConnectionError(f"etcd at {self.gateway_url}: {e!r}") from e
        if response.status_code != 200:
            raise RuntimeError(f"etcd at {self.gateway_url} refused {path}: {response.text}")
        return response.json()

    async def _cleanup(self) -> None:
        await super()._cleanup()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
