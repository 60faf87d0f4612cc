"""TraefikConsulProxy: Traefik's dynamic config and the route records in Consul's KV.

The traitlets and Traefik's Consul provider; the client is
:class:`traefik_proxy.stores.consul.ConsulStore` (transactions of at most
64 operations; larger changes are split).
"""

from __future__ import annotations

from traitlets import Dict, Unicode, validate

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
    consul_password = Unicode(
        "", config=True, help="Consul ACL token; with consul_username, the basic-auth password"
    )
    consul_username = Unicode(
        "",
        config=True,
        help="""With consul_password, reach Consul with HTTP basic auth
        (username:password) instead of an ACL token: for a Consul behind a
        proxy that checks it. A traefik the Hub starts gets it as
        CONSUL_HTTP_AUTH in its environment; set that yourself for one you run.""",
    )
    # jupyterhub-traefik-proxy's old names
    kv_url = deprecated_alias("consul_url", "1.0")
    kv_username = deprecated_alias("consul_username", "1.0")
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

        basic_auth = (self.consul_username, self.consul_password) if self.consul_username else None
        return ConsulStore(
            self.consul_url,
            token="" if basic_auth else self.consul_password,
            basic_auth=basic_auth,
            client_kwargs=self.consul_client_kwargs,
            separator=self.kv_separator,
        )

    async def _setup_traefik_static_config(self) -> None:
        provider = core.consul_provider(
            self.consul_url,
            self.kv_traefik_prefix,
            token="" if self.consul_username else self.consul_password,
            client_kwargs=self.consul_client_kwargs,
        )
        self.static_config = core.deep_merge(self.static_config, {"providers": {"consul": provider}})
        await super()._setup_traefik_static_config()

    def _traefik_process_env(self) -> dict[str, str]:
        env = super()._traefik_process_env()
        if self.consul_username:  # read by Traefik's Consul client (hashicorp/consul/api)
            env.setdefault("CONSUL_HTTP_AUTH", f"{self.consul_username}:{self.consul_password}")
        return env
