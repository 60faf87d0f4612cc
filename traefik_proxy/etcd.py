"""TraefikEtcdProxy: Traefik's dynamic config and the route records in etcd v3.

The traitlets and Traefik's etcd provider; the client is
:class:`traefik_proxy.stores.etcd.EtcdStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from traitlets import Dict, Integer, Unicode, validate

from . import core
from .kv import TKvProxy, check_store_url
from .setting_checks import deprecated_alias
from .stores.base import KVStore

if TYPE_CHECKING:  # etcd3 is imported when first used (it is an optional dependency)
    from .stores.etcd import EtcdStore


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

    etcd_url = Unicode(
        "http://127.0.0.1:2379",
        config=True,
        help="""URL of the etcd endpoint (http:// or https://), or of several
        endpoints of one cluster, comma-separated as etcdctl --endpoints takes
        them: http://e1:2379,http://e2:2379,http://e3:2379. Traefik gets them
        all; the Hub uses one at a time and goes on to the next when it stops
        answering.""",
    )
    etcd_username = Unicode("", config=True, help="etcd user (with etcd_password)")
    etcd_password = Unicode("", config=True, help="Password of etcd_username")
    # jupyterhub-traefik-proxy's old names, still in operators' configs
    kv_url = deprecated_alias("etcd_url", "1.0")
    kv_username = deprecated_alias("etcd_username", "1.0")
    kv_password = deprecated_alias("etcd_password", "1.0")
    etcd_client_kwargs = Dict(
        config=True,
        help="""Extra arguments of etcd3.client(), e.g. ca_cert, cert_key,
        cert_cert (file paths) for TLS, timeout (seconds per gRPC call;
        default: check_route_timeout, at most 10) or grpc_options. With an
        https etcd_url, ca_cert is required.""",
    )

    @validate("etcd_url")
    def _validate_etcd_url(self, proposal):
        form = "http://host:port or https://host:port, or several of them comma-separated"
        endpoints = core.split_endpoints(proposal.value)
        if not endpoints:
            raise ValueError(f"etcd_url {proposal.value!r} must be {form}")
        schemes = {check_store_url("etcd_url", url, ("http", "https"), form).scheme for url in endpoints}
        if len(schemes) > 1:
            raise ValueError(
                f"etcd_url {proposal.value!r} mixes http and https endpoints: the members "
                "of one cluster share one scheme (and one TLS setup)"
            )
        return proposal.value

    @property
    def etcd(self):
        """The ``etcd3`` client of the endpoint in use (jupyterhub-traefik-proxy's
        attribute, for code that calls etcd itself); connects if need be, blocking."""
        # the store _make_store makes (a subclass with another store has no etcd client)
        return cast("EtcdStore", self.kv_store).client

    def _make_store(self) -> KVStore:
        from .stores.etcd import EtcdStore

        scheme = urlsplit(core.split_endpoints(self.etcd_url)[0]).scheme
        if scheme == "https" and not self.etcd_client_kwargs.get("ca_cert"):
            raise ValueError(
                f"etcd_url {self.etcd_url!r} is https; set c.TraefikEtcdProxy.etcd_client_kwargs "
                "= {'ca_cert': '/path/to/ca.pem'} (and cert_key/cert_cert for client certificates)"
            )
        return EtcdStore(
            self.etcd_url,
            username=self.etcd_username,
            password=self.etcd_password,
            client_kwargs=self.etcd_client_kwargs,
            call_timeout=min(10, self.check_route_timeout),
            limits=core.TxnLimits(self.etcd_max_txn_ops, self.etcd_max_txn_bytes),
            separator=self.kv_separator,
            log=self.log,
        )

    async def _setup_traefik_static_config(self) -> None:
        provider = core.etcd_provider(
            self.etcd_url,
            self.kv_traefik_prefix,
            username=self.etcd_username,
            password=self.etcd_password,
            client_kwargs=self.etcd_client_kwargs,
        )
        self.static_config = core.deep_merge(self.static_config, {"providers": {"etcd": provider}})
        await super()._setup_traefik_static_config()
