"""TraefikConsulProxy: Traefik's dynamic config and the route records in Consul's KV.

Writes go through Consul's transaction endpoint (``PUT /v1/txn``), which takes
at most 64 operations; larger changes are split (see
:attr:`TKvProxy.kv_max_txn_ops`). Reads are one recursive ``GET /v1/kv``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlsplit

from consul.callback import CB
from traitlets import Dict, Unicode, validate

from . import core
from .kv import TKvProxy, check_store_url


class TraefikConsulProxy(TKvProxy):
    """JupyterHub proxy with Traefik's dynamic config in Consul."""

    provider_name = "consul"

    kv_max_txn_ops = 64

    consul_url = Unicode(
        "http://127.0.0.1:8500", config=True, help="URL of Consul's HTTP API (http or https)"
    )
    consul_username = Unicode(
        "", config=True, help="Unused by Consul (kept for symmetry); the ACL token is consul_password"
    )
    consul_password = Unicode("", config=True, help="Consul ACL token")
    consul_client_kwargs = Dict(
        config=True,
        help="""Extra arguments of consul.aio.Consul(), e.g. verify (a CA bundle
        path, or False) and cert (client certificate path or (cert, key)).""",
    )

    @validate("consul_url")
    def _validate_consul_url(self, proposal):
        check_store_url(
            "consul_url", proposal.value, ("http", "https"), "http://host:port or https://host:port"
        )
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._consul = None

    def _endpoint(self) -> tuple[str, str, int]:
        url = urlsplit(self.consul_url)
        return url.scheme, url.hostname or "127.0.0.1", url.port or 8500

    @property
    def consul(self):
        # created lazily: the aiohttp session must be made inside the running loop
        if self._consul is None:
            import consul.aio

            scheme, host, port = self._endpoint()
            kwargs: dict[str, Any] = {"host": host, "port": port, "scheme": scheme}
            if self.consul_password:
                kwargs["token"] = self.consul_password
            kwargs.update(self.consul_client_kwargs)
            self._consul = consul.aio.Consul(**kwargs)
        return self._consul

    async def _close(self) -> None:
        await super()._close()
        if self._consul is not None:
            await self._consul.close()
            self._consul = None

    # ------------------------------------------------------------ static config

    def _setup_traefik_static_config(self, config: dict[str, Any]) -> dict[str, Any]:
        scheme, host, port = self._endpoint()
        provider: dict[str, Any] = {
            "endpoints": [f"{scheme}://{host}:{port}"],
            "rootKey": self.kv_traefik_prefix,
        }
        if self.consul_password:
            provider["token"] = self.consul_password
        if scheme == "https":
            kwargs = self.consul_client_kwargs
            tls: dict[str, Any] = {}
            if isinstance(kwargs.get("verify"), str):
                tls["ca"] = kwargs["verify"]
            elif kwargs.get("verify") is False:
                tls["insecureSkipVerify"] = True
            cert = kwargs.get("cert")
            if isinstance(cert, (tuple, list)):
                tls["cert"], tls["key"] = cert
            provider["tls"] = tls
        return core.deep_merge(config, {"providers": {"consul": provider}})

    # ------------------------------------------------------------ store primitives

    async def _txn(self, ops: list[dict[str, Any]]) -> None:
        client = self.consul
        try:
            # not consul.txn.put(): it leaves out the ACL token header
            await client.http.put(
                CB.json(), "/v1/txn", data=json.dumps(ops), headers=client.prepare_headers()
            )
        except Exception as e:
            if self._kv_unavailable(e):
                raise  # Consul did not answer: TKvProxy retries until its deadline
            # the client's message carries the response body, never the token
            raise RuntimeError(f"Consul transaction at {self.consul_url} failed: {e}") from None

    def _kv_unavailable(self, error: BaseException) -> bool:
        import aiohttp

        return isinstance(error, (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError))

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        await self._txn(
            [
                {"KV": {"Verb": "set", "Key": key, "Value": base64.b64encode(value.encode()).decode()}}
                for key, value in to_set.items()
            ]
        )

    async def _kv_atomic_delete(self, *keys: str) -> None:
        sep = self.kv_separator
        await self._txn(
            [
                {"KV": {"Verb": "delete-tree" if key.endswith(sep) else "delete", "Key": key}}
                for key in keys
            ]
        )

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        _index, items = await self.consul.kv.get(prefix, recurse=True)
        return {
            item["Key"]: (item["Value"] or b"").decode()
            for item in items or []
            if item["Key"].startswith(prefix)
        }
