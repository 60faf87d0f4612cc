"""Traefik's key-value provider blocks of the static config, from our settings.

Each function maps the store URL, credentials and client options that the
Hub uses to the ``providers.<name>`` block through which Traefik reads the
same store: same endpoint, credentials, database and TLS files, and the Hub's
Traefik prefix as ``rootKey``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from .config import host_port

#: Where each store listens unless its URL says otherwise.
DEFAULT_PORTS = {"etcd": 2379, "redis": 6379, "consul": 8500, "sentinel": 26379}


def store_endpoint(url: str, default_port: int) -> tuple[str, str, int]:
    """(scheme, host, port) of a store URL; host 127.0.0.1 when absent."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "127.0.0.1", parts.port or default_port


def split_endpoints(urls: str) -> list[str]:
    """The endpoints of a comma-separated list, as ``etcdctl --endpoints`` takes
    them (``http://e1:2379,http://e2:2379``); blanks around commas are ignored."""
    return [url.strip() for url in urls.split(",") if url.strip()]


def sentinel_address(text: str) -> tuple[str, int]:
    """(host, port) of a Redis Sentinel given as ``host[:port]`` (port 26379
    when absent; IPv6 in brackets), or a ValueError saying the form."""
    try:
        parts = urlsplit(f"//{text.strip()}")
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or not parts.hostname
        or any(c.isspace() for c in text.strip())
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ValueError(f"Redis Sentinel {text!r} must be host:port, e.g. 's1.example.org:26379'")
    return parts.hostname, port or DEFAULT_PORTS["sentinel"]


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
    endpoints = [store_endpoint(one, DEFAULT_PORTS[kind]) for one in split_endpoints(url)]
    scheme = endpoints[0][0]
    block: dict[str, Any] = {
        "endpoints": [host_port(host, port) for _, host, port in endpoints],
        "rootKey": root_key,
    }
    block.update({k: v for k, v in (("username", username), ("password", password)) if v})
    tls_scheme, names = _TLS_OPTIONS[kind]
    if scheme == tls_scheme:
        options = options or {}
        block["tls"] = {theirs: options[ours] for ours, theirs in names.items() if options.get(ours)}
    return block


def etcd_provider(
    url: str, root_key: str, *, username: str = "", password: str = "", client_kwargs: _ClientKwargs = None
) -> dict[str, Any]:
    """Traefik's ``providers.etcd``; ``client_kwargs`` as ``etcd3.client()`` takes them.

    ``url`` may list several endpoints of one cluster, comma-separated (see
    :func:`split_endpoints`): Traefik gets all of them, in that order.
    """
    return _block("etcd", url, root_key, username, password, client_kwargs)


def redis_provider(
    url: str,
    root_key: str,
    *,
    username: str = "",
    password: str = "",
    client_kwargs: _ClientKwargs = None,
    sentinel_master: str = "",
    sentinel_urls: Sequence[str] = (),
) -> dict[str, Any]:
    """Traefik's ``providers.redis``; credentials may come from the URL instead.

    ``client_kwargs`` as ``redis.asyncio.from_url()`` takes them. With
    ``sentinel_master``, Traefik asks the sentinels (its endpoints then) for
    that master; ``url`` still gives the data nodes' database, credentials and
    TLS.
    """
    parts = urlsplit(url)
    username = username or unquote(parts.username or "")
    password = password or unquote(parts.password or "")
    block = _block("redis", url, root_key, username, password, client_kwargs)
    if redis_db(url):
        block["db"] = redis_db(url)
    if sentinel_master:
        block["endpoints"] = [host_port(*sentinel_address(s)) for s in sentinel_urls]
        block["sentinel"] = {"masterName": sentinel_master}
    return block


def consul_provider(
    url: str, root_key: str, *, token: str = "", client_kwargs: _ClientKwargs = None
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
