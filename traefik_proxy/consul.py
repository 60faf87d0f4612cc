"""TraefikConsulProxy: Traefik's dynamic config and the route records in Consul's KV.

The traitlets and Traefik's Consul provider; the client is
:class:`traefik_proxy.stores.consul.ConsulStore` (transactions of at most
64 operations; larger changes are split).
"""

from __future__ import annotations

import warnings
from typing import Any

from traitlets import Dict, Unicode, observe, validate

from . import core
from .kv import TKvProxy, check_store_url
from .setting_checks import deprecated_alias
from .stores.base import KVStore


class TraefikConsulProxy(TKvProxy):
    """JupyterHub proxy with Traefik's dynamic config in Consul."""

    provider_name = "consul"

    consul_url = Unicode(
        "http://127.0.0.1:8500", config=True, help="URL of Consul's HTTP API (http or https)"
    )
    consul_password = Unicode("", config=True, help="Consul ACL token")
    # jupyterhub-traefik-proxy's old names (kv_username: at the end of the class)
    kv_url = deprecated_alias("consul_url", "1.0")
    kv_password = deprecated_alias("consul_password", "1.0")
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

    def _make_store(self) -> KVStore:
        from .stores.consul import ConsulStore

        return ConsulStore(
            self.consul_url,
            token=self.consul_password,
            client_kwargs=self.consul_client_kwargs,
            separator=self.kv_separator,
        )

    async def _setup_traefik_static_config(self) -> None:
        provider = core.consul_provider(
            self.consul_url,
            self.kv_traefik_prefix,
            token=self.consul_password,
            client_kwargs=self.consul_client_kwargs,
        )
        self.static_config = core.deep_merge(self.static_config, {"providers": {"consul": provider}})
        await super()._setup_traefik_static_config()

    # jupyterhub-traefik-proxy 2.x mapped kv_username to consul_username, which
    # only reached its traefik (as HTTP basic auth); Consul itself takes the
    # ACL token alone, so the name is accepted but cannot mean anything here
    kv_username = Unicode(
        config=True,
        help="Deprecated (jupyterhub-traefik-proxy 1.0) and ignored: Consul takes the ACL token "
        "in consul_password.",
    )

    @observe("kv_username")
    def _kv_username_ignored(self, change):
        message = (
            "TraefikConsulProxy.kv_username is deprecated (jupyterhub-traefik-proxy 1.0) and "
            "ignored: Consul takes an ACL token alone, set it in TraefikConsulProxy.consul_password"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        self.log.warning(message)
