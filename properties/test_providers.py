"""Properties of Traefik's KV provider blocks (traefik_proxy.core.providers):
Traefik reads the store the Hub writes, with the same credentials and TLS files."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import (
    consul_provider,
    etcd_provider,
    host_port,
    redis_provider,
    sentinel_address,
    split_endpoints,
)

from .strategies import FAST, hostnames

hosts = st.one_of(
    hostnames,
    st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "fd00::5", "2001:db8::1"]),
)
ports = st.none() | st.integers(1, 65535)
root_keys = st.sampled_from(["traefik", "hubs/hub1/traefik", "t-0123456789abcdef"])
secret_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def url(scheme: str, host: str, port: int | None, rest: str = "") -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}{'' if port is None else f':{port}'}{rest}"


@FAST
@given(st.sampled_from(["http", "https"]), hosts, ports, root_keys, secret_text, secret_text)
def test_etcd_endpoint_credentials_and_tls(scheme, host, port, root, username, password):
    kwargs = {"ca_cert": "/ca.pem", "cert_cert": "/c.pem", "cert_key": "/k.pem", "timeout": 3}
    block = etcd_provider(
        url(scheme, host, port), root, username=username, password=password, client_kwargs=kwargs
    )
    assert block["endpoints"] == [host_port(host.lower(), port or 2379)]
    assert block["rootKey"] == root
    assert block.get("username", "") == username
    assert block.get("password", "") == password
    if scheme == "https":
        assert block["tls"] == {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"}
    else:
        assert "tls" not in block


@FAST
@given(
    st.sampled_from(["redis", "rediss"]),
    hosts,
    ports,
    root_keys,
    st.integers(0, 15),
    secret_text,
    secret_text,
    st.booleans(),
)
def test_redis_endpoint_credentials_db_and_tls(scheme, host, port, root, db, username, password, in_url):
    """Credentials come from the traitlets or, percent-encoded, from the URL."""
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}@" if in_url else ""
    address = url(scheme, host, port, f"/{db}")
    address = address.replace("://", "://" + userinfo, 1)
    traits = {} if in_url else {"username": username, "password": password}
    kwargs = {"ssl_ca_certs": "/ca.pem", "ssl_keyfile": "/k.pem"}
    block = redis_provider(address, root, client_kwargs=kwargs, **traits)
    assert block["endpoints"] == [host_port(host.lower(), port or 6379)]
    assert block["rootKey"] == root
    assert block.get("username", "") == username
    assert block.get("password", "") == password
    assert block.get("db", 0) == db
    if scheme == "rediss":
        assert block["tls"] == {"ca": "/ca.pem", "key": "/k.pem"}
    else:
        assert "tls" not in block


@FAST
@given(st.sampled_from(["http", "https"]), hosts, ports, root_keys, secret_text)
def test_consul_endpoint_token_and_tls(scheme, host, port, root, token):
    block = consul_provider(url(scheme, host, port), root, token=token, client_kwargs={"verify": "/ca.pem"})
    assert block["endpoints"] == [f"{scheme}://{host_port(host.lower(), port or 8500)}"]
    assert block["rootKey"] == root
    assert block.get("token", "") == token
    assert ("tls" in block) == (scheme == "https")


def test_consul_tls_options():
    https = "https://consul.example:8501"
    assert consul_provider(https, "t", client_kwargs={"verify": False})["tls"] == {"insecureSkipVerify": True}
    tls = consul_provider(https, "t", client_kwargs={"cert": ("/c.pem", "/k.pem")})["tls"]
    assert tls == {"cert": "/c.pem", "key": "/k.pem"}
    assert consul_provider(https, "t")["tls"] == {}


def test_provider_defaults():
    assert etcd_provider("http://127.0.0.1:2379", "traefik") == {
        "endpoints": ["127.0.0.1:2379"],
        "rootKey": "traefik",
    }
    assert redis_provider("redis://localhost", "traefik") == {
        "endpoints": ["localhost:6379"],
        "rootKey": "traefik",
    }
    assert consul_provider("http://127.0.0.1:8500", "traefik") == {
        "endpoints": ["http://127.0.0.1:8500"],
        "rootKey": "traefik",
    }


@FAST
@given(
    st.lists(st.tuples(hosts, ports), min_size=1, max_size=5),
    st.sampled_from(["http", "https"]),
    st.sampled_from([",", ", ", " , "]),
)
def test_etcd_cluster_every_endpoint_in_order(members, scheme, comma):
    """etcd_url lists a cluster's members as etcdctl --endpoints does: Traefik
    gets every one, in order, with the default port where none is given."""
    joined = comma.join(url(scheme, host, port) for host, port in members)
    assert split_endpoints(joined) == [url(scheme, host, port) for host, port in members]
    block = etcd_provider(joined, "traefik", client_kwargs={"ca_cert": "/ca.pem"})
    assert block["endpoints"] == [host_port(host.lower(), port or 2379) for host, port in members]
    assert ("tls" in block) == (scheme == "https")


@FAST
@given(hosts, ports)
def test_sentinel_address_round_trip(host, port):
    written = host_port(host, port) if port else (f"[{host}]" if ":" in host else host)
    assert sentinel_address(written) == (host.lower(), port or 26379)


@pytest.mark.parametrize("bad", ["", "s1/x", "redis://s1:26379", "s1:port", "u@s1:1", "s 1:2", "s1:1?x"])
def test_sentinel_address_refuses_what_is_not_host_port(bad):
    with pytest.raises(ValueError, match="host:port"):
        sentinel_address(bad)


@FAST
@given(st.lists(st.tuples(hosts, ports), min_size=1, max_size=4), st.integers(0, 15), secret_text)
def test_redis_sentinel_the_sentinels_are_traefiks_endpoints(sentinels, db, password):
    """With Sentinel, Traefik asks the sentinels for the master; the URL still
    gives the database and the data nodes' password."""
    written = [host_port(h, p or 26379) for h, p in sentinels]
    address = f"redis://:{quote(password, safe='')}@ignored.example:6379/{db}"
    block = redis_provider(address, "traefik", sentinel_master="mymaster", sentinel_urls=written)
    assert block["endpoints"] == [host_port(h.lower(), p or 26379) for h, p in sentinels]
    assert block["sentinel"] == {"masterName": "mymaster"}
    assert block.get("db", 0) == db
    assert block.get("password", "") == password
    # without a master name, no sentinel
    assert "sentinel" not in redis_provider(address, "traefik", sentinel_urls=written)
