"""Properties of Traefik's KV provider blocks (traefik_proxy.core.providers):
Traefik reads the store the Hub writes, with the same credentials and TLS files."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import consul_provider, etcd_provider, host_port, redis_provider

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
    st.sampled_from(["redis", "rediss"]), hosts, ports, root_keys, st.integers(0, 15),
    secret_text, secret_text, st.booleans(),
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
    assert consul_provider(https, "t", client_kwargs={"verify": False})["tls"] == {
        "insecureSkipVerify": True
    }
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
