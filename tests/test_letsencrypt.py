"""Let's Encrypt against a real ACME server: Pebble (tests/acme_servers.py).

The proxy under test runs a real traefik whose ACME client orders a
certificate for ``hub.test`` from Pebble; Pebble's DNS says hub.test is
127.0.0.1 and its validation connects to the proxy's plain-HTTP port
(HTTP-01) or HTTPS port (TLS-ALPN-01). One Pebble serves the whole module, so
the proxies here run one after another on the same two ports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from cryptography import x509

from traefik_proxy.core.acme import LETSENCRYPT_PRODUCTION
from traefik_proxy.default_cert import COMMON_NAME as DEFAULT_CN

from .acme_servers import DOMAIN, Pebble, start_pebble
from .hub_process import HubProcess
from .proxies import make_proxy
from .test_browser import CHROMIUM, IN_CI, browse
from .test_jupyterhub import PASSWORD, _drive_hub
from .utils import free_port, served_certificate, wait_for

CERT_TIMEOUT = 60  # seconds; Pebble with no sleeps issues in a few


class RecordingHandler(logging.Handler):
    """Keeps every record the proxy logs, for assertions on the Hub's log."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    server = start_pebble(tmp_path_factory.mktemp("pebble"), http_port=free_port(), tls_port=free_port())
    yield server
    server.stop()


def acme_proxy(request, directory: Path, pebble: Pebble, kind: str = "file", **overrides):
    """An unstarted proxy that orders hub.test's certificate from Pebble, and its log."""
    traits = dict(
        public_url=f"https://127.0.0.1:{pebble.tls_port}",
        traefik_http_port=pebble.http_port,
        traefik_letsencrypt_email="admin@hub.test",
        traefik_letsencrypt_domains=[DOMAIN],
        traefik_acme_server=pebble.directory_url,
        traefik_acme_storage=str(directory / "acme.json"),
        traefik_env=pebble.traefik_env(),
    )
    traits.update(overrides)
    proxy = make_proxy(kind, request, directory, **traits)
    recorder = RecordingHandler()
    proxy.log.addHandler(recorder)
    proxy.log.setLevel(logging.DEBUG)
    request.addfinalizer(lambda: proxy.log.removeHandler(recorder))
    return proxy, recorder


def chains_to(port: int, root_pem: str, sni: str = DOMAIN) -> bool:
    """Whether the proxy serves, for ``sni``, a certificate verifying against ``root_pem``."""
    context = ssl.create_default_context(cadata=root_pem)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=sni):
                return True
    except OSError:  # a certificate that does not verify, or nothing listening yet
        return False


async def wait_for_certificate(port: int, root_pem: str, timeout: float = CERT_TIMEOUT) -> float:
    """Seconds until the proxy serves a certificate chaining to ``root_pem``."""
    started = time.monotonic()
    while not await asyncio.to_thread(chains_to, port, root_pem):
        if time.monotonic() - started > timeout:
            subject = served_certificate(port, DOMAIN).subject.rfc4514_string()
            raise AssertionError(f"no certificate from Pebble within {timeout}s (serving {subject})")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def https_client(root_pem: str | None) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=root_pem) if root_pem else False
    return httpx.AsyncClient(verify=verify, trust_env=False, timeout=10)


async def get_as_hub_test(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """A request for https://hub.test/... sent to 127.0.0.1 (hub.test is not in /etc/hosts)."""
    return await client.get(url, headers={"Host": DOMAIN}, extensions={"sni_hostname": DOMAIN})


async def wait_for_log(recorder: RecordingHandler, needle: str, timeout: float = CERT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in recorder.messages(logging.ERROR) if needle in m]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no error with {needle!r} in the Hub's log: {recorder.messages(logging.WARNING)}")


# ---------------------------------------------------------------- obtaining it


async def test_certificate_from_pebble_redirect_and_restart(request, tmp_path, pebble, backends):
    """HTTP-01: the certificate is Pebble's, http redirects, a restart orders nothing."""
    root = pebble.root_pem()
    orders_before = pebble.orders()
    proxy, recorder = acme_proxy(request, tmp_path / "first", pebble)
    started = time.monotonic()
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        await wait_for_certificate(pebble.tls_port, root)
        elapsed = time.monotonic() - started
        print(f"\n  time from proxy start to HTTPS serving Pebble's certificate (HTTP-01): {elapsed:.1f}s")
        certificate = served_certificate(pebble.tls_port, DOMAIN)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert names.value.get_values_for_type(x509.DNSName) == [DOMAIN]
        assert pebble.orders() == orders_before + 1

        async with https_client(root) as client:
            response = await get_as_hub_test(client, f"https://127.0.0.1:{pebble.tls_port}/hub/home")
        assert response.status_code == 200
        assert response.json()["backend"] == "hub"

        await check_plain_http(pebble)
        storage = Path(proxy.traefik_acme_storage)
        assert stat.S_IMODE(storage.stat().st_mode) == 0o600
        assert not [m for m in recorder.messages(logging.ERROR) if "Let's Encrypt" in m]
    finally:
        await proxy.stop()

    # a new proxy (a Hub restart) with the same storage serves the stored
    # certificate at once and orders no new one
    serial = certificate.serial_number
    proxy, _ = acme_proxy(request, tmp_path / "second", pebble, traefik_acme_storage=str(storage))
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        assert await wait_for_certificate(pebble.tls_port, root, timeout=10) < 10
        await asyncio.sleep(5)  # time enough for Traefik to order one if it were going to
        assert served_certificate(pebble.tls_port, DOMAIN).serial_number == serial
        assert pebble.orders() == orders_before + 1
    finally:
        await proxy.stop()


async def check_plain_http(pebble: Pebble) -> None:
    """http:// redirects to https://, except for ACME challenges."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        base = f"http://127.0.0.1:{pebble.http_port}"
        response = await client.get(f"{base}/hub/login?next=%2Fhub%2F", headers={"Host": DOMAIN})
        assert response.status_code in (302, 307), response
        assert response.headers["location"] == f"https://{DOMAIN}:{pebble.tls_port}/hub/login?next=%2Fhub%2F"
        # Traefik's challenge router outranks the redirect: an unknown token is
        # its 404, not a redirect
        response = await client.get(
            f"{base}/.well-known/acme-challenge/unknown-token", headers={"Host": DOMAIN}
        )
        assert response.status_code == 404, (response, response.headers)


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_tls_alpn_challenge_and_hsts(request, tmp_path, pebble, backends, kind):
    """TLS-ALPN-01 on the HTTPS port alone (no plain HTTP); HSTS on every answer."""
    root = pebble.root_pem()
    orders_before = pebble.orders()
    proxy, recorder = acme_proxy(
        request,
        tmp_path,
        pebble,
        kind=kind,
        traefik_acme_challenge="tls-alpn-01",
        traefik_http_port=0,
        traefik_hsts=True,
    )
    started = time.monotonic()
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        await proxy.add_route("/user/alice/", backends["a"].url, {"user": "alice"})
        await wait_for_certificate(pebble.tls_port, root)
        elapsed = time.monotonic() - started
        print(
            f"\n  time from proxy start to HTTPS serving Pebble's certificate (TLS-ALPN-01, {kind}): {elapsed:.1f}s"
        )
        async with https_client(root) as client:
            for path, backend in (("/hub/", "hub"), ("/user/alice/api", "a")):
                response = await get_as_hub_test(client, f"https://127.0.0.1:{pebble.tls_port}{path}")
                assert response.json()["backend"] == backend
                assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert pebble.orders() == orders_before + 1  # obtained at the first try
        assert not [m for m in recorder.messages(logging.ERROR) if "Let's Encrypt" in m]
        with socket.socket() as s:  # no plain-HTTP entrypoint
            assert s.connect_ex(("127.0.0.1", pebble.http_port)) != 0
    finally:
        await proxy.stop()


# ---------------------------------------------------------------- failures


async def test_failed_validation_is_reported_and_hub_keeps_serving(request, tmp_path, pebble, backends):
    """Pebble cannot reach the challenge: the Hub's log says why, HTTPS goes on."""
    # traefik answers HTTP-01 on another port than the one Pebble connects to
    proxy, recorder = acme_proxy(request, tmp_path, pebble, traefik_http_port=free_port())
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        line = await wait_for_log(recorder, f"no certificate for {DOMAIN}")
        print(f"\n  hub log: {line}")
        assert "the ACME server could not validate the challenge" in line
        assert f"{DOMAIN}:{pebble.http_port}" in line and "connection refused" in line, line
        # traefik's own line came through too, at error level
        assert any("Unable to obtain ACME certificate" in m for m in recorder.messages(logging.ERROR))
        # Traefik tries again at its next configuration change (as the README says)
        attempts = pebble.orders()
        await proxy.add_route("/user/alice/", backends["a"].url, {"user": "alice"})

        async def ordered_again() -> bool:
            return pebble.orders() > attempts

        await wait_for(ordered_again, CERT_TIMEOUT, interval=0.1)
        # still serving, with the default certificate the proxy keeps
        assert DEFAULT_CN in served_certificate(pebble.tls_port, DOMAIN).subject.rfc4514_string()
        async with https_client(None) as client:
            response = await get_as_hub_test(client, f"https://127.0.0.1:{pebble.tls_port}/hub/")
        assert response.json()["backend"] == "hub"
    finally:
        await proxy.stop()


async def test_unreachable_acme_server_is_reported(request, tmp_path, pebble, backends):
    nowhere = f"https://127.0.0.1:{free_port()}/dir"
    proxy, recorder = acme_proxy(request, tmp_path, pebble, traefik_acme_server=nowhere)
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        line = await wait_for_log(recorder, "no certificate for")
        assert f"Traefik could not reach the ACME server {nowhere}" in line, line
        assert "connection refused" in line
    finally:
        await proxy.stop()


# ---------------------------------------------------------------- refused settings


def jupyterhub_app_standin(public_url: str) -> SimpleNamespace:
    """Stand-in for the JupyterHub app: only the public_url it gives the proxy."""
    return SimpleNamespace(public_url=public_url)


@pytest.mark.parametrize(
    "traits, expected",
    [
        (
            {
                "traefik_letsencrypt_email": "",
                "traefik_letsencrypt_domains": [DOMAIN],
                "traefik_acme_server": LETSENCRYPT_PRODUCTION,
            },
            "traefik_letsencrypt_domains is set but traefik_letsencrypt_email is empty",
        ),
        (
            {
                "traefik_letsencrypt_domains": [DOMAIN],
                "app": jupyterhub_app_standin("https://hub.example.org/"),
            },
            "does not include 'hub.example.org', the Hub's public host",
        ),
        (
            {"traefik_replica_api_urls": ["http://127.0.0.1:9"]},
            "cannot be combined with traefik_replica_api_urls",
        ),
        ({"traefik_letsencrypt_email": "admin"}, "'admin' is not an email address"),
        (
            {"traefik_letsencrypt_domains": [], "public_url": "https://127.0.0.1:8443"},
            "no domain to request a certificate for",
        ),
    ],
)
async def test_unusable_settings_are_refused_at_start(request, tmp_path, pebble, traits, expected):
    proxy, _ = acme_proxy(request, tmp_path, pebble, **traits)
    with pytest.raises(ValueError) as info:
        await proxy.start()
    assert expected in str(info.value)
    assert proxy.traefik_process is None  # nothing was started
    await proxy.stop()


# ---------------------------------------------------------------- a real JupyterHub


class LocalNameTransport(httpx.HTTPTransport):
    """Connects to 127.0.0.1 for hub.test, as an /etc/hosts line would.

    The request keeps the name for SNI, the certificate's name check and the
    Host header; the original request (whose URL says hub.test) is what the
    client keeps cookies for.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == DOMAIN:
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1"),
                headers=request.headers,
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": DOMAIN},
            )
        return super().handle_request(request)


class HttpsHub(HubProcess):
    """The demo Hub with Let's Encrypt from Pebble, reached as https://hub.test:<port>."""

    def __init__(self, directory: Path, pebble: Pebble):
        self.root_pem = pebble.root_pem()
        public_url = f"https://{DOMAIN}:{pebble.tls_port}"
        extra_config = "\n".join(
            [
                f"c.JupyterHub.public_url = {public_url + '/'!r}",
                "c.TraefikProxy.traefik_letsencrypt_email = 'admin@hub.test'",
                f"c.TraefikProxy.traefik_acme_server = {pebble.directory_url!r}",
                f"c.TraefikProxy.traefik_acme_storage = {str(directory / 'acme.json')!r}",
                f"c.TraefikProxy.traefik_http_port = {pebble.http_port}",
                f"c.TraefikProxy.traefik_env = {pebble.traefik_env()!r}",
                "",
            ]
        )
        super().__init__(
            directory,
            PASSWORD,
            extra_config,
            # JupyterHub turns this into http:// (no ssl_cert); the proxy serves TLS on it
            bind_url=f"https://127.0.0.1:{pebble.tls_port}",
            public_url=public_url,
        )

    def client(self, *, token: bool = True, **kwargs) -> httpx.Client:
        verify = ssl.create_default_context(cadata=self.root_pem)
        kwargs.setdefault("transport", LocalNameTransport(verify=verify))
        return super().client(token=token, **kwargs)


def test_jupyterhub_login_and_spawn_over_https(tmp_path, pebble):
    """The Hub starts traefik, traefik gets hub.test's certificate, a user logs in and spawns."""
    hub = HttpsHub(tmp_path, pebble)
    started = time.monotonic()
    with hub:  # starts the Hub
        hub.wait_until(
            lambda: chains_to(pebble.tls_port, hub.root_pem),
            CERT_TIMEOUT,
            "HTTPS serving Pebble's certificate",
            interval=0.1,
        )
        elapsed = time.monotonic() - started
        print(f"\n  time from JupyterHub start to HTTPS serving Pebble's certificate: {elapsed:.1f}s")
        hub.wait_ready()
        with hub.client(token=False) as client:
            _drive_hub(hub, client)
        with httpx.Client(trust_env=False) as plain:  # http:// sends users to https://
            response = plain.get(f"http://127.0.0.1:{pebble.http_port}/hub/", headers={"Host": DOMAIN})
        assert response.headers["location"] == f"{hub.public_url}/hub/"
        log = hub.log_text()
        assert "Let's Encrypt: Traefik obtains a certificate for hub.test" in log
        print(
            *(
                f"  hub log: {line}"
                for line in log.splitlines()
                if "Let's Encrypt" in line or "traefik:" in line
            ),
            sep="\n",
        )
        assert "no certificate for" not in log
        hub.stop()


def trusting_home(directory: Path, root_pem: str) -> Path:
    """A HOME whose NSS database (what Chromium trusts on Linux) trusts ``root_pem``."""
    certutil = shutil.which("certutil")
    if certutil is None:
        message = "certutil not installed: apt-get install libnss3-tools (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    nssdb = directory / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    (directory / "pebble-root.pem").write_text(root_pem)
    database = f"sql:{nssdb}"
    subprocess.run([certutil, "-d", database, "-N", "--empty-password"], check=True)
    subprocess.run(
        [
            certutil,
            "-d",
            database,
            "-A",
            "-t",
            "C,,",
            "-n",
            "Pebble root",
            "-i",
            str(directory / "pebble-root.pem"),
        ],
        check=True,
    )
    return directory


# under CI=true a missing Chromium fails, as in tests/test_browser.py
@pytest.mark.skipif(CHROMIUM is None and not IN_CI, reason="no chromium binary (apt-get install chromium)")
def test_browser_over_https(tmp_path, pebble, capsys):
    """The browser test, once, at https://hub.test with Pebble's root trusted."""
    assert CHROMIUM is not None, (
        "CI=true but no chromium binary: `make chromium` (part of `make test`) failed"
    )
    hub = HttpsHub(tmp_path / "hub", pebble)
    home = trusting_home(tmp_path / "home", hub.root_pem)
    (tmp_path / "hub").mkdir()
    with hub:
        hub.wait_until(
            lambda: chains_to(pebble.tls_port, hub.root_pem),
            CERT_TIMEOUT,
            "HTTPS serving Pebble's certificate",
            interval=0.1,
        )
        browse(
            hub,
            tmp_path,
            capsys,
            prefix="https-browser",
            args=(f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1",),
            env={"HOME": str(home)},
        )
        hub.stop()
