"""Let's Encrypt through Traefik's ACME client, as configuration and decisions.

Pure functions: which settings are acceptable (and what to say when they are
not), the static-config fragment (a certificate resolver and a plain-HTTP
entrypoint that redirects to https), the dynamic-config fragment (a router
that makes Traefik request the certificate, the HSTS middleware), and how to
explain an ACME failure that Traefik logged.

Why the redirect can be entrypoint-wide: Traefik answers HTTP-01 challenges
with an internal router of the highest possible priority on the challenge's
entrypoint, above the redirection router, so ``/.well-known/acme-challenge/``
is never redirected (tests/test_letsencrypt.py checks it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .config import ALLOWED_ENCODED_CHARACTERS, Nested

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
#: Untrusted certificates, much higher rate limits: for trying the setup out.
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
CHALLENGES = ("http-01", "tls-alpn-01")
#: Name of the certificate resolver in Traefik's static config.
RESOLVER = "letsencrypt"
HSTS_DEFAULT_MAX_AGE = 365 * 24 * 3600

_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
)
_IP_RE = re.compile(r"^[0-9.]+\Z|:|^\*\Z")
_CONFIG_HINT = "c.TraefikProxy"


class AcmeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What Traefik's ACME setup depends on (validated; from the traitlets)."""

    email: str
    domains: tuple[str, ...]
    server: str = LETSENCRYPT_PRODUCTION
    challenge: str = "http-01"
    #: where Traefik keeps the account key and certificates (absolute path)
    storage: str = "acme.json"
    #: the public TLS entrypoint, which serves the certificate
    entrypoint: str = "https"
    #: the plain-HTTP entrypoint; "" when there is none
    http_entrypoint: str = "http"
    http_address: str = ":80"
    namespace: str = "jupyterhub"
    #: Traefik's name of the provider holding the dynamic config (file, etcd...)
    provider: str = "file"
    #: Strict-Transport-Security max-age in seconds; 0: no HSTS header
    hsts_max_age: int = 0


# ---------------------------------------------------------------- validation


def certificate_host(public_url: str, bind_url: str = "") -> str:
    """The name users reach the Hub by, lowercased, or "" when none is known.

    JupyterHub's ``public_url`` says it when set. Otherwise the URL the proxy
    listens on (JupyterHub's ``bind_url``) does, if its host is a DNS name
    rather than an address to listen on (an IP, localhost, or empty for all
    addresses).
    """
    for url in (public_url, bind_url):
        host = (urlsplit(url).hostname or "").lower() if url else ""
        if host and host != "localhost" and not _IP_RE.search(host):
            return host
    return ""


def effective_domains(domains: Sequence[str], host: str) -> tuple[str, ...]:
    """The names to request: the configured ones, else the Hub's public host."""
    names = [d.strip().lower().rstrip(".") for d in domains if d.strip()]
    if not names and host:
        names = [host]
    return tuple(dict.fromkeys(names))  # order kept, duplicates dropped


def settings_problems(
    *,
    email: str,
    domains: Sequence[str],
    host: str,
    https_port: int,
    server: str,
    challenge: str,
    http_port: int,
    replicas: Sequence[str],
) -> list[str]:
    """Why these Let's Encrypt settings cannot work, one message per problem.

    ``host`` is the Hub's public name (:func:`certificate_host`), ``https_port``
    the port the public entrypoint listens on. Each message names the value
    and what to set instead. An empty list means the settings are usable.
    """
    problems: list[str] = []
    if replicas:
        problems.append(_replica_problem(replicas))
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        problems.append(
            f"traefik_letsencrypt_email {email!r} is not an email address; Let's Encrypt "
            f"registers the account with it: set {_CONFIG_HINT}.traefik_letsencrypt_email "
            "= 'admin@example.org'"
        )
    problems += _domain_problems(domains, host)
    return problems + _server_and_port_problems(server, challenge, http_port, https_port)


def _server_and_port_problems(server: str, challenge: str, http_port: int, https_port: int) -> list[str]:
    problems = []
    if urlsplit(server).scheme not in ("https", "http") or not urlsplit(server).hostname:
        problems.append(
            f"traefik_acme_server {server!r} is not the URL of an ACME directory; use "
            f"{LETSENCRYPT_PRODUCTION!r} or, to try things out, {LETSENCRYPT_STAGING!r}"
        )
    if challenge not in CHALLENGES:
        problems.append(f"traefik_acme_challenge {challenge!r} is not one of {', '.join(CHALLENGES)}")
    if challenge == "http-01" and not http_port:
        problems.append(
            "traefik_acme_challenge 'http-01' needs the plain-HTTP port, but traefik_http_port "
            "is 0; set traefik_http_port = 80 or traefik_acme_challenge = 'tls-alpn-01'"
        )
    if http_port and http_port == https_port:
        problems.append(
            f"the public entrypoint listens on port {https_port}, which traefik_http_port "
            "also names. JupyterHub turns an https bind_url into http:// when ssl_cert is "
            "not set, so its port defaults to 80: give the https port explicitly, e.g. "
            "c.JupyterHub.bind_url = 'https://:443'"
        )
    return problems


def _replica_problem(replicas: Sequence[str]) -> str:
    return (
        "traefik_letsencrypt_email cannot be combined with traefik_replica_api_urls "
        f"({', '.join(replicas)}): Traefik keeps ACME accounts and certificates in a local "
        "file that replicas cannot share, so each replica would order its own certificate "
        "and fail the challenges the load balancer sends to the others. With several "
        "replicas, obtain the certificate outside Traefik (e.g. certbot or cert-manager) "
        "and give every replica the files through c.JupyterHub.ssl_cert / ssl_key, or "
        "terminate TLS at the load balancer."
    )


def _domain_problems(domains: Sequence[str], host: str) -> list[str]:
    names = effective_domains(domains, host)
    if not names:
        return [
            "no domain to request a certificate for: set c.JupyterHub.public_url = "
            f"'https://hub.example.org/' or {_CONFIG_HINT}.traefik_letsencrypt_domains = "
            "['hub.example.org']"
        ]
    problems = []
    for name in names:
        if name.startswith("*."):
            problems.append(
                f"traefik_letsencrypt_domains: {name!r} is a wildcard, which needs the DNS-01 "
                "challenge that this proxy does not set up; list each name instead"
            )
        elif _IP_RE.search(name) or not _DOMAIN_RE.match(name):
            problems.append(
                f"traefik_letsencrypt_domains: {name!r} is not a DNS name Let's Encrypt can "
                "certify (no IP addresses, ports, paths or '_'); list names like "
                "'hub.example.org'"
            )
    if host and host not in names:
        problems.append(
            f"traefik_letsencrypt_domains {list(names)!r} does not include {host!r}, the "
            "Hub's public host, so users would get a certificate for another name; add "
            f"{host!r} to traefik_letsencrypt_domains (or leave it unset: it defaults to "
            "the public URL's host)"
        )
    return problems


def settings_without_email(changed: Sequence[str]) -> str | None:
    """The message for Let's Encrypt settings given without the email that turns it on."""
    if not changed:
        return None
    return (
        f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} set but "
        "traefik_letsencrypt_email is empty, so Let's Encrypt is off; set "
        f"{_CONFIG_HINT}.traefik_letsencrypt_email = 'admin@example.org' to turn it on"
    )


def http_entrypoint_name(taken: Sequence[str]) -> str:
    """The plain-HTTP entrypoint's name: "http" unless another entrypoint has it."""
    name = "http"
    while name in taken:
        name += "-plain"
    return name


# ---------------------------------------------------------------- config


def static_fragment(s: AcmeSettings) -> Nested:
    """Static config: the certificate resolver and the plain-HTTP entrypoint."""
    acme: Nested = {"email": s.email, "storage": s.storage, "caServer": s.server}
    if s.challenge == "http-01":
        acme["httpChallenge"] = {"entryPoint": s.http_entrypoint}
    else:
        acme["tlsChallenge"] = {}
    entrypoints: Nested = {}
    if s.http_entrypoint:
        # one redirect for every request on plain HTTP; Traefik's challenge
        # router outranks it (see the module docstring). Browsers remember a
        # permanent redirect like HSTS, so it is permanent only with HSTS on.
        redirect = {"to": s.entrypoint, "scheme": "https", "permanent": bool(s.hsts_max_age)}
        entrypoints[s.http_entrypoint] = {
            "address": s.http_address,
            "http": {
                "redirections": {"entryPoint": redirect},
                "encodedCharacters": dict(ALLOWED_ENCODED_CHARACTERS),
                "aliasHeadersStrategy": "delete",
            },
        }
    if s.hsts_max_age:
        # entrypoint middlewares apply to every router on it, the routes'
        # own ones included, without touching each route's config
        entrypoints[s.entrypoint] = {
            "http": {"middlewares": [f"{hsts_middleware_name(s.namespace)}@{s.provider}"]}
        }
    config: Nested = {"certificatesResolvers": {RESOLVER: {"acme": acme}}}
    if entrypoints:
        config["entryPoints"] = entrypoints
    return config


def certificate_router_name(namespace: str) -> str:
    return f"{namespace}-acme-certificate"


def hsts_middleware_name(namespace: str) -> str:
    return f"{namespace}-hsts"


def dynamic_fragment(s: AcmeSettings) -> Nested:
    """Dynamic config: the router that makes Traefik obtain the certificate, and HSTS.

    Traefik's ACME client requests certificates for routers that name its
    resolver, not for entrypoints; the routes' routers carry their own TLS
    section, which an entrypoint default does not override. So one router of
    our own names the resolver and the domains. Its rule matches no request
    (every path starts with "/"): it must never take traffic from the Hub's
    ``/`` route, whose priority is as low as a priority gets. The certificate
    lands in Traefik's default store and is served, by SNI, on every router.
    """
    domain: Nested = {"main": s.domains[0]}
    if len(s.domains) > 1:
        domain["sans"] = list(s.domains[1:])
    hosts = " || ".join(f"Host(`{d}`)" for d in s.domains)
    config: Nested = {
        "http": {
            "routers": {
                certificate_router_name(s.namespace): {
                    "rule": f"({hosts}) && !PathPrefix(`/`)",
                    "entryPoints": [s.entrypoint],
                    "service": "noop@internal",
                    "priority": 1,
                    "tls": {"certResolver": RESOLVER, "domains": [domain]},
                }
            }
        }
    }
    if s.hsts_max_age:
        config["http"]["middlewares"] = {
            hsts_middleware_name(s.namespace): {"headers": {"stsSeconds": s.hsts_max_age}}
        }
    return config


# ---------------------------------------------------------------- Traefik's log

_OBTAIN_FAILED = "Unable to obtain ACME certificate for domains"
_RESOLVER_SKIPPED = "The ACME resolve is skipped from the resolvers list"

# (what the reason contains, what the operator can do), first match wins
_HINTS: tuple[tuple[str, str], ...] = (
    (
        "get directory",
        "Traefik could not reach the ACME server {server}: check traefik_acme_server "
        "and that this machine can open HTTPS connections to it (firewall, proxy)",
    ),
    (
        "error:ratelimited",
        "the ACME server rate-limits this account or domain: wait, and use Let's "
        "Encrypt's staging server (traefik_acme_server = '" + LETSENCRYPT_STAGING + "') "
        "while trying things out",
    ),
    (
        "error:dns",
        "the ACME server could not look up the domain: check that its DNS A/AAAA "
        "records exist and point to this machine",
    ),
    (
        "error:invalidcontact",
        "the ACME server refused traefik_letsencrypt_email: set a working address",
    ),
    (
        "error:rejectedidentifier",
        "the ACME server will not certify this name (Let's Encrypt only certifies "
        "public DNS names): check traefik_letsencrypt_domains",
    ),
    (
        "error:caa",
        "a CAA record of the domain forbids this CA: allow it in the domain's DNS",
    ),
    (
        "error:",
        "the ACME server could not validate the challenge: check that the domain's DNS "
        "points to this machine and that {port} is reachable from the internet",
    ),
)


class CertificateFailure(msgspec.Struct, frozen=True):
    """An ACME failure Traefik logged, explained for the Hub's log."""

    domains: tuple[str, ...]
    reason: str
    hint: str

    def message(self) -> str:
        names = ", ".join(self.domains) or "the configured domains"
        return (
            f"Let's Encrypt: no certificate for {names}: {self.hint}. HTTPS is served "
            f"with Traefik's default certificate until one is obtained; Traefik tries "
            f"again at its next configuration change or restart. Traefik's reason: "
            f"{self.reason}"
        )


def certificate_failure(
    record: Mapping[str, Any], *, server: str, challenge: str
) -> CertificateFailure | None:
    """The ACME failure in one of Traefik's JSON log records, or None."""
    message = record.get("message")
    if message == _OBTAIN_FAILED:
        domains = record.get("domains") or ()
        if isinstance(domains, str):
            domains = (domains,)
        reason = str(record.get("error", ""))
        return CertificateFailure(tuple(map(str, domains)), reason, _hint(reason, server, challenge))
    if message == _RESOLVER_SKIPPED:
        reason = str(record.get("error", ""))
        if "too open" in reason:
            hint = "the ACME storage file must be private: chmod 600 it (traefik_acme_storage)"
        else:
            hint = f"Traefik could not set up its ACME client for {server}: check traefik_acme_storage and traefik_acme_server"
        return CertificateFailure((), reason, hint)
    return None


def _hint(reason: str, server: str, challenge: str) -> str:
    port = "port 80 (traefik_http_port)" if challenge == "http-01" else "port 443"
    folded = reason.lower()
    for needle, hint in _HINTS:
        if needle in folded:
            return hint.format(server=server, port=port)
    return "see Traefik's reason"
