"""A real ACME server for the tests: Pebble, with pebble-challtestsrv as its DNS.

Debian's ``pebble`` package is Let's Encrypt's own RFC 8555 test server; it
ships ``pebble-challtestsrv``, used here only as a DNS server that answers
every A query with 127.0.0.1, so Pebble's validation of ``hub.test`` reaches
the proxy under test. Pebble's HTTPS listener gets a certificate from a
trustme CA; Traefik's ACME client (lego) trusts it through
``LEGO_CA_CERTIFICATES``. Pebble validates HTTP-01 on ``http_port`` and
TLS-ALPN-01 on ``tls_port``: the proxy's plain-HTTP and HTTPS ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme

from .utils import free_port

DOMAIN = "hub.test"


def find_pebble() -> tuple[str, str]:
    """The two binaries; skips (fails under CI=true, where `make test` installs them)."""
    pebble, dns = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    if pebble and dns:
        return pebble, dns
    message = "pebble not installed: apt-get install pebble (make test does)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Pebble:
    """A running Pebble and its DNS server, with what a test needs to check its work."""

    directory_url: str
    management_url: str
    #: CA file that verifies Pebble's own listener (for LEGO_CA_CERTIFICATES)
    listener_ca: Path
    http_port: int
    tls_port: int
    log_path: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def root_pem(self) -> str:
        """Pebble's root CA (new at each Pebble start), from its management API."""
        with httpx.Client(verify=self._listener_context(), trust_env=False) as client:
            response = client.get(f"{self.management_url}/roots/0")
            response.raise_for_status()
            return response.text

    def orders(self) -> int:
        """How many certificate orders Pebble has received."""
        return len(re.findall(r"Added order ", self.log_text()))

    def issued_serials(self) -> list[str]:
        return re.findall(r"Issued certificate serial ([0-9a-f]+)", self.log_text())

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def traefik_env(self) -> dict[str, str]:
        return {"LEGO_CA_CERTIFICATES": str(self.listener_ca)}

    def _listener_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.listener_ca))

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_pebble(directory: Path, http_port: int, tls_port: int) -> Pebble:
    """Pebble on free ports, validating challenges on ``http_port``/``tls_port``."""
    pebble_bin, dns_bin = find_pebble()
    directory.mkdir(parents=True, exist_ok=True)
    acme_port, management_port, dns_port = free_port(), free_port(), free_port()
    _write_config(directory, acme_port, management_port, http_port, tls_port)
    pebble = Pebble(
        directory_url=f"https://127.0.0.1:{acme_port}/dir",
        management_url=f"https://127.0.0.1:{management_port}",
        listener_ca=directory / "listener-ca.pem",
        http_port=http_port,
        tls_port=tls_port,
        log_path=directory / "pebble.log",
    )
    # DNS only: no AAAA answers (the proxy listens on 127.0.0.1), no
    # challenge servers of its own (the proxy answers the challenges)
    dns_args = [
        dns_bin,
        "-dns01",
        f"127.0.0.1:{dns_port}",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-management",
        f"127.0.0.1:{free_port()}",
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
    ]
    # no random sleeps before validating, no rejected nonces, no reused
    # authorizations: fast, and every order is validated for real
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    with open(directory / "dns.log", "wb") as dns_log, open(pebble.log_path, "wb") as log:
        pebble.processes.append(
            subprocess.Popen(dns_args, stdout=dns_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        )
        pebble.processes.append(
            subprocess.Popen(
                [
                    pebble_bin,
                    "-config",
                    str(directory / "pebble.json"),
                    "-dnsserver",
                    f"127.0.0.1:{dns_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=directory,
            )
        )
    try:
        _wait_for_directory(pebble)
    except BaseException:
        pebble.stop()
        raise
    return pebble


def _write_config(
    directory: Path, acme_port: int, management_port: int, http_port: int, tls_port: int
) -> None:
    """pebble.json, and a trustme CA and certificate for Pebble's own listener."""
    ca = trustme.CA()
    listener = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(directory / "listener-ca.pem"))
    listener.private_key_pem.write_to_path(str(directory / "listener-key.pem"))
    listener.cert_chain_pems[0].write_to_path(str(directory / "listener-cert.pem"))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(directory / "listener-cert.pem"),
            "privateKey": str(directory / "listener-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (directory / "pebble.json").write_text(json.dumps(config))


def _wait_for_directory(pebble: Pebble, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for process in pebble.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited: {pebble.log_text()[-2000:]}")
        try:
            with httpx.Client(verify=pebble._listener_context(), trust_env=False) as client:
                if client.get(pebble.directory_url).status_code == 200:
                    return
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"pebble did not answer within {timeout}s ({last!r}): {pebble.log_text()[-2000:]}")
