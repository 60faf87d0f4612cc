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


#: per store: the URL scheme that means TLS, and the client library's names
#: of the files Traefik's ``tls`` block takes as ca, cert and key
_TLS_OPTIONS = {
    "etcd": ("https", {"ca_cert": "ca", "cert_cert": "cert", "cert_key": "key"}),
    "redis": ("rediss", {"ssl_ca_certs": "ca", "ssl_certfile": "cert", "ssl_keyfile": "key"}),
}

_ClientKwargs = Mapping[str, Any] | None


def _block(
    kind: str, url: str, root_key: str, username: str, password: str, options: _ClientKwargs
) -> dict[str, Any]:
    scheme, host, port = store_endpoint(url, DEFAULT_PORTS[kind])
    block: dict[str, Any] = {"endpoints": [host_port(host, port)], "rootKey": root_key}
    block.update({k: v for k, v in (("username", username), ("password", password)) if v})
    tls_scheme, names = _TLS_OPTIONS[kind]
    if scheme == tls_scheme:
        options = options or {}
        block["tls"] = {theirs: options[ours] for ours, theirs in names.items() if options.get(ours)}
    return block


def etcd_provider(
    url: str, root_key: str, *, username="", password="", client_kwargs: _ClientKwargs = None
) -> dict[str, Any]:
    """Traefik's ``providers.etcd``; ``client_kwargs`` as ``etcd3.client()`` takes them."""
    return _block("etcd", url, root_key, username, password, client_kwargs)


def redis_provider(
    url: str, root_key: str, *, username="", password="", client_kwargs: _ClientKwargs = None
) -> dict[str, Any]:
    """Traefik's ``providers.redis``; credentials may come from the URL instead.

    ``client_kwargs`` as ``redis.asyncio.from_url()`` takes them.
    """
    parts = urlsplit(url)
    username = username or unquote(parts.username or "")
    password = password or unquote(parts.password or "")
    block = _block("redis", url, root_key, username, password, client_kwargs)
    if redis_db(url):
        block["db"] = redis_db(url)
    return block


def consul_provider(
    url: str, root_key: str, *, token="", client_kwargs: _ClientKwargs = None
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
