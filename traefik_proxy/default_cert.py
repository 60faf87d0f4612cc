"""The default TLS certificate the proxy names in Traefik's dynamic config.

Unless the dynamic config names a default certificate, Traefik's TLS manager
generates a fresh self-signed RSA-2048 one on *every* configuration reload:
at 100 routes about three quarters of a reload's CPU, and the prime search
makes its time vary (the p90 of ``add_route``). So when the operator gives
none, the proxy creates one small self-signed ECDSA certificate once, keeps
it (key and certificate in one PEM file, mode 0600) and reuses it at every
start. It goes into the dynamic config as PEM content, not as a path, so
every Traefik reading the config gets it, replicas on other machines
included.

A certificate no client is meant to trust: Traefik serves it only where no
other certificate matches the name asked for (as it served its own).
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .files import atomic_write

#: the subject's common name, so that a client (or a test) can tell it apart
#: from Traefik's own "TRAEFIK DEFAULT CERT"
COMMON_NAME = "traefik-proxy default certificate"
#: long-lived: nobody verifies it; renewed when it gets within RENEW_BEFORE of its end
VALIDITY = datetime.timedelta(days=3650)
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class DefaultCertificate:
    """A certificate and its key, PEM text, as Traefik reads them in place of files."""

    cert_pem: str
    key_pem: str


def create(now: datetime.datetime) -> DefaultCertificate:
    """A new self-signed ECDSA P-256 certificate, valid from ``now`` for VALIDITY."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little behind
        .not_valid_after(now + VALIDITY)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key)


def _pem(cert: x509.Certificate, key) -> DefaultCertificate:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DefaultCertificate(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode())


def parse(pem: bytes, now: datetime.datetime) -> DefaultCertificate | str:
    """The certificate kept in ``pem`` (key and certificate), or why it cannot be reused."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as e:
        return f"it does not hold a PEM certificate and unencrypted key ({e})"
    if cert.public_key() != key.public_key():
        return "its key does not belong to its certificate"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return _pem(cert, key)


def load_or_create(path: Path, log: logging.Logger) -> DefaultCertificate:
    """The certificate kept at ``path``; created (and kept there, 0600) if missing or unusable."""
    path = Path(path)
    now = datetime.datetime.now(datetime.UTC)
    why_new = "none was kept yet"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        pass
    else:
        if mode & 0o077:
            log.warning(
                "traefik_default_cert_file %s had mode %o; set it to 0600 (it holds a private key)",
                path,
                stat.S_IMODE(mode),
            )
            os.chmod(path, 0o600)
        kept = parse(path.read_bytes(), now)
        if isinstance(kept, DefaultCertificate):
            return kept
        why_new = f"the one in {path} cannot be reused: {kept}"
        log.warning("Replacing Traefik's default certificate: %s", why_new)
    certificate = create(now)
    atomic_write(path, (certificate.key_pem + certificate.cert_pem).encode(), mode=0o600)
    log.info(
        "Created Traefik's default TLS certificate (self-signed ECDSA) in %s (%s), so that "
        "Traefik does not generate an RSA key at every reload",
        path,
        why_new,
    )
    return certificate
