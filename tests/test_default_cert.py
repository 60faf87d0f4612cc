"""The default TLS certificate the proxy keeps, so Traefik makes no RSA key per reload.

Through a real traefik on every backend kind: the proxy's certificate is the
one Traefik serves where no other matches (here on an https API entrypoint,
which has no certificate of its own), it is the same after a restart, the
operator's certificate replaces it, and without it Traefik serves its own.
The file it is kept in is checked without traefik: 0600, and replaced when it
cannot be reused.
"""

from __future__ import annotations

import datetime
import logging
import stat
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from traefik_proxy import default_cert
from traefik_proxy.core import names_default_certificate

from .proxies import PROXY_KINDS, make_proxy
from .utils import free_port, served_certificate

TRAEFIKS_OWN = "TRAEFIK DEFAULT CERT"


def https_api(**overrides):
    """Traitlets of a proxy whose API entrypoint serves TLS with the default certificate."""
    return dict(
        traefik_api_url=f"https://127.0.0.1:{free_port()}",
        traefik_api_validate_cert=False,
        **overrides,
    )


def api_port(proxy) -> int:
    return int(proxy.traefik_api_url.rsplit(":", 1)[1])


def kept_certificate(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


async def served_once_started(proxy, backend, port: int | None = None) -> x509.Certificate:
    """Start ``proxy``, add a route, and return the certificate its API port
    (or ``port``) serves for "localhost"; stopped again in any case."""
    await proxy.start()
    try:
        await proxy.add_route("/user/cert/", backend.url, {})
        return served_certificate(port or api_port(proxy), "localhost")
    finally:
        await proxy.stop()


def operators_certificate(directory, *names: str) -> tuple[str, str]:
    """(cert file, key file) of a certificate for ``names`` from a test CA."""
    issued = trustme.CA().issue_cert(*names)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))
    return str(cert_file), str(key_file)


@pytest.mark.parametrize("kind", sorted(PROXY_KINDS))
async def test_traefik_serves_the_kept_certificate_across_restarts(kind, request, tmp_path, backends, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy(kind, request, tmp_path, **https_api())
    kept = tmp_path / "traefik-default-cert.pem"
    served = await served_once_started(proxy, backends["a"])
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert served == kept_certificate(kept)
    assert default_cert.COMMON_NAME in served.subject.rfc4514_string()
    assert isinstance(served.public_key(), default_cert.ec.EllipticCurvePublicKey)
    content = kept.read_bytes()
    key_line = content.decode().splitlines()[1]  # the first base64 line of the private key
    assert len(key_line) > 40
    for record in caplog.records:
        assert "PRIVATE KEY" not in record.getMessage()
        assert key_line not in record.getMessage()

    # a new proxy object with the same settings: the same certificate, the file untouched
    again = make_proxy(kind, request, tmp_path, **_same_store(proxy))
    assert await served_once_started(again, backends["b"]) == served
    assert kept.read_bytes() == content


def _same_store(proxy) -> dict:
    """The settings a restarted proxy shares with ``proxy``: ports, files, store prefixes."""
    names = ["public_url", "traefik_api_url", "traefik_api_validate_cert"]
    names += [n for n in ("kv_traefik_prefix", "kv_jupyterhub_prefix") if proxy.has_trait(n)]
    return {name: getattr(proxy, name) for name in names}


async def test_the_operators_certificate_wins(request, tmp_path, backends):
    """ssl_cert/ssl_key: Traefik serves them, and the proxy creates no certificate of its own."""
    cert_file, key_file = operators_certificate(tmp_path, "127.0.0.1", "localhost")
    public_port = free_port()
    proxy = make_proxy(
        "file",
        request,
        tmp_path / "hub",
        public_url=f"https://127.0.0.1:{public_port}",
        ssl_cert=cert_file,
        ssl_key=key_file,
    )
    served = await served_once_started(proxy, backends["a"], public_port)
    assert served == kept_certificate(Path(cert_file))
    assert not (tmp_path / "hub" / "traefik-default-cert.pem").exists()


async def test_the_operators_certificate_replaces_the_kept_one(request, tmp_path, backends):
    """A store written with the proxy's certificate, then started with the operator's."""
    proxy = make_proxy("etcd", request, tmp_path, **https_api())
    ours = await served_once_started(proxy, backends["a"])
    cert_file, key_file = operators_certificate(tmp_path, "localhost")
    settings = {**_same_store(proxy), "public_url": f"https://127.0.0.1:{free_port()}"}
    operators = make_proxy("etcd", request, tmp_path, **settings, ssl_cert=cert_file, ssl_key=key_file)
    served = await served_once_started(operators, backends["a"])
    assert default_cert.COMMON_NAME in ours.subject.rfc4514_string()
    assert served == kept_certificate(Path(cert_file))


async def test_turned_off_traefik_serves_its_own(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path, **https_api(traefik_default_cert=False))
    served = await served_once_started(proxy, backends["a"])
    assert TRAEFIKS_OWN in served.subject.rfc4514_string()
    assert not (tmp_path / "traefik-default-cert.pem").exists()


def test_a_certificate_in_extra_dynamic_config_wins(request, tmp_path):
    theirs = {"tls": {"stores": {"default": {"defaultCertificate": {"certFile": "/c", "keyFile": "/k"}}}}}
    proxy = make_proxy("file", request, tmp_path, extra_dynamic_config=theirs)
    proxy._generate_password_if_needed()
    config = proxy._generate_traefik_dynamic_config()
    assert config["tls"] == theirs["tls"]
    assert not (tmp_path / "traefik-default-cert.pem").exists()
    # and without it, the proxy's certificate is named, as PEM content
    proxy = make_proxy("file", request, tmp_path)
    proxy._generate_password_if_needed()
    config = proxy._generate_traefik_dynamic_config()
    assert names_default_certificate(config)
    named = config["tls"]["stores"]["default"]["defaultCertificate"]
    assert named["certFile"].startswith("-----BEGIN CERTIFICATE-----")
    assert named["keyFile"].startswith("-----BEGIN PRIVATE KEY-----")


def test_kept_file_is_private_and_an_open_one_is_closed(tmp_path, caplog):
    path = tmp_path / "kept.pem"
    first = default_cert.load_or_create(path, logging.getLogger("t"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        again = default_cert.load_or_create(path, logging.getLogger("t"))
    assert again == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "set it to 0600" in caplog.text and str(path) in caplog.text


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(
    "content, why",
    [
        (lambda: b"not a certificate", "does not hold a PEM certificate"),
        # a certificate with another certificate's key
        (
            lambda: (default_cert.create(_now()).cert_pem + default_cert.create(_now()).key_pem).encode(),
            "does not belong",
        ),
        # ten years ago: expired
        (lambda: _joined(default_cert.create(_now() - datetime.timedelta(days=3660))), "expires on"),
    ],
    ids=["garbage", "foreign-key", "expired"],
)
def test_an_unusable_kept_file_is_replaced(tmp_path, caplog, content, why):
    path = tmp_path / "kept.pem"
    path.write_bytes(content())
    path.chmod(0o600)
    with caplog.at_level(logging.INFO):
        new = default_cert.load_or_create(path, logging.getLogger("t"))
    assert why in caplog.text and str(path) in caplog.text
    assert default_cert.parse(path.read_bytes(), _now()) == new


def _joined(certificate: default_cert.DefaultCertificate) -> bytes:
    return (certificate.key_pem + certificate.cert_pem).encode()


def test_parse_reads_back_what_was_created():
    created = default_cert.create(_now())
    assert default_cert.parse(_joined(created), _now()) == created
    key = serialization.load_pem_private_key(created.key_pem.encode(), None)
    assert key.public_key() == x509.load_pem_x509_certificate(created.cert_pem.encode()).public_key()
