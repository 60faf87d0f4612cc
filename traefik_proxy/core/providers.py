"""Traefik's key-value provider blocks of the static config, from our settings.

Each function maps the store URL, credentials and client options that the
Hub uses to the ``providers.<name>`` block through which Traefik reads the
same store: same endpoint, credentials, database and TLS files, and the Hub's
Traefik prefix as ``rootKey``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from .config import host_port

#: Where each store listens unless its URL says otherwise.
DEFAULT_PORTS = {"etcd": 2379, "redis": 6379, "consul": 8500}


def store_endpoint(url: str, default_port: int) -> tuple[str, str, int]:
    """(scheme, host, port) of a store URL; host 127.0.0.1 when absent."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "127.0.0.1", parts.port or default_port


def redis_db(url: str) -> int:
    """The database number in a Redis URL's path (0 when absent)."""
    return int(urlsplit(url).path.strip("/") or 0)


def _tls(client_kwargs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    # Traefik's tls block from the client library's option names
    return {theirs: client_kwargs[ours] for ours, theirs in names.items() if client_kwargs.get(ours)}


def _credentials(username: str, password: str) -> dict[str, str]:
    return {k: v for k, v in (("username", username), ("password", password)) if v}


def etcd_provider(
    url: str,
    root_key: str,
    *,
    username: str = "",
    password: str = "",
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Traefik's ``providers.etcd``; ``client_kwargs`` as ``etcd3.client()`` takes them."""
    scheme, host, port = store_endpoint(url, DEFAULT_PORTS["etcd"])
    block: dict[str, Any] = {"endpoints": [host_port(host, port)], "rootKey": root_key}
    block.update(_credentials(username, password))
    if scheme == "https":
        names = {"ca_cert": "ca", "cert_cert": "cert", "cert_key": "key"}
        block["tls"] = _tls(client_kwargs or {}, names)
    return block


def redis_provider(
    url: str,
    root_key: str,
    *,
    username: str = "",
    password: str = "",
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Traefik's ``providers.redis``; credentials may come from the URL too."""
    scheme, host, port = store_endpoint(url, DEFAULT_PORTS["redis"])
    parts = urlsplit(url)
    block: dict[str, Any] = {"endpoints": [host_port(host, port)], "rootKey": root_key}
    block.update(
        _credentials(
            username or unquote(parts.username or ""), password or unquote(parts.password or "")
        )
    )
    if redis_db(url):
        block["db"] = redis_db(url)
    if scheme == "rediss":
        names = {"ssl_ca_certs": "ca", "ssl_certfile": "cert", "ssl_keyfile": "key"}
        block["tls"] = _tls(client_kwargs or {}, names)
    return block


def consul_provider(
    url: str,
    root_key: str,
    *,
    token: str = "",
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Traefik's ``providers.consul``; ``client_kwargs`` as ``consul.aio.Consul()`` takes them."""
    scheme, host, port = store_endpoint(url, DEFAULT_PORTS["consul"])
    block: dict[str, Any] = {
        "endpoints": [f"{scheme}://{host_port(host, port)}"],
        "rootKey": root_key,
    }
    if token:
        block["token"] = token
    if scheme == "https":
        kwargs = client_kwargs or {}
        tls: dict[str, Any] = {}
        if isinstance(kwargs.get("verify"), str):
            tls["ca"] = kwargs["verify"]
        elif kwargs.get("verify") is False:
            tls["insecureSkipVerify"] = True
        cert = kwargs.get("cert")
        if isinstance(cert, (tuple, list)):
            tls["cert"], tls["key"] = cert
        block["tls"] = tls
    return block
