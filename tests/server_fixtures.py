"""Pytest plugin: session-scoped fixtures for the real key-value servers.

Loaded by ``pytest_plugins`` in tests/conftest.py. Each server starts once per
session, on free ports, in a temporary directory, and stops at the end
(starting them is :mod:`tests.servers`' job). Proxies share a server by using
their own random key prefixes (see :func:`tests.kv_support.kv_prefixes`).
"""

from __future__ import annotations

import pytest

from .servers import etcdctl, free_port, start_consul, start_etcd, start_redis


def _serving(server):
    """A fixture's body: the server, stopped at teardown."""
    yield server
    server.stop()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    """etcd without auth, shared by every etcd proxy of the session."""
    yield from _serving(start_etcd(tmp_path_factory.mktemp("etcd")))


@pytest.fixture(scope="session")
def etcd_auth_server(tmp_path_factory):
    """etcd with authentication on: user ``root`` with a password."""
    server = start_etcd(tmp_path_factory.mktemp("etcd-auth"))
    password = "etcd-Pass-" + str(free_port())
    etcdctl(server, "user", "add", "root", f"--new-user-password={password}")
    etcdctl(server, "user", "grant-role", "root", "root")
    etcdctl(server, "auth", "enable")
    server.username, server.password = "root", password
    yield from _serving(server)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    # a test dependency: missing, the TLS tests must fail, not skip
    import trustme

    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.org", "client")
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client.key",
    }
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    client.cert_chain_pems[0].write_to_path(paths["client_cert"])
    client.private_key_pem.write_to_path(paths["client_key"])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="session")
def etcd_tls_server(tmp_path_factory, tls_certs):
    """etcd over https that also requires a client certificate."""
    yield from _serving(start_etcd(tmp_path_factory.mktemp("etcd-tls"), tls=tls_certs))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Valkey without auth, shared by every Redis proxy of the session."""
    yield from _serving(start_redis(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory):
    """Redis with the default user off and an ACL user with a password."""
    user = ("hub", "redis-Pass-" + str(free_port()))
    yield from _serving(start_redis(tmp_path_factory.mktemp("redis-auth"), acl_user=user))


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory):
    """Consul without an ACL token, shared by every Consul proxy of the session."""
    yield from _serving(start_consul(tmp_path_factory.mktemp("consul")))


@pytest.fixture(scope="session")
def consul_token_server(tmp_path_factory):
    """A Consul (stand-in) that requires an ACL token."""
    token = "consul-token-" + str(free_port())
    yield from _serving(start_consul(tmp_path_factory.mktemp("consul-acl"), token=token))
