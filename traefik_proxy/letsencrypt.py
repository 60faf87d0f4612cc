"""HTTPS without certificate files: Let's Encrypt through Traefik's ACME client.

:class:`LetsEncryptMixin` holds the settings (``c.TraefikProxy.traefik_letsencrypt_email``
and friends) and the few steps TraefikProxy calls: check the settings at
start, add the certificate resolver and the plain-HTTP entrypoint to the
static config, add the certificate's router (and HSTS) to the dynamic config,
and read Traefik's log so that a certificate Traefik could not obtain is
reported in the Hub's log with Traefik's reason. The decisions themselves are
in :mod:`traefik_proxy.core.acme`.

Traefik keeps the ACME account and certificates in one local file, so this
works with one Traefik only: the combination with ``traefik_replica_api_urls``
is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Bool, CaselessStrEnum, Integer, List, Unicode
from traitlets.config import Configurable

from .core import acme
from .core.config import deep_merge, tls_fragment
from .core.logline import JSON_LOG_CONFIG
from .traefik_log import TraefikLogForwarder
from .traefik_process import public_address

# settings that mean nothing without the email, with their defaults
_NEEDS_EMAIL = {
    "traefik_letsencrypt_domains": [],
    "traefik_acme_server": acme.LETSENCRYPT_PRODUCTION,
    "traefik_acme_challenge": "http-01",
    "traefik_hsts": False,
}


class LetsEncryptMixin(Configurable):
    """Let's Encrypt settings and steps of TraefikProxy (see the module docstring)."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy (its traitlets,
        # JupyterHub's Proxy's), which defines it (see proxy.py). Nothing here
        # exists at run time.
        log: logging.Logger
        app: Any  # the JupyterHub application
        public_url: str
        ssl_cert: str
        ssl_key: str
        provider_name: str
        traefik_namespace: str
        traefik_entrypoint: str
        traefik_api_entrypoint: str
        traefik_replica_api_urls: list[str]

    traefik_letsencrypt_email = Unicode(
        "",
        config=True,
        help="""Turns on HTTPS with a certificate from Let's Encrypt (or another ACME
        server): the address the ACME account is registered with, where expiry
        notices go. The public entrypoint then serves TLS on the public URL's
        port (give it explicitly: c.JupyterHub.bind_url = 'https://:443'), and
        plain HTTP on traefik_http_port redirects to it.""",
    )
    traefik_letsencrypt_domains = List(
        Unicode(),
        config=True,
        help="""The names the certificate is for (the first is its main name).
        Empty: the host of c.JupyterHub.public_url (or of the bind URL, when it
        is a DNS name). Each must resolve to this machine in public DNS.""",
    )
    traefik_acme_server = Unicode(
        acme.LETSENCRYPT_PRODUCTION,
        config=True,
        help=f"""The ACME directory URL. Default: Let's Encrypt's production server.
        To try things out without its strict rate limits, use the staging
        server, {acme.LETSENCRYPT_STAGING}, whose certificates browsers do not
        trust; then remove traefik_acme_storage and switch back.""",
    )
    traefik_acme_challenge = CaselessStrEnum(
        list(acme.CHALLENGES),
        "http-01",
        config=True,
        help="""How the ACME server checks that this machine answers for the domains:
        'http-01' over plain HTTP on port 80 (traefik_http_port), or
        'tls-alpn-01' over the public https port (443).""",
    )
    traefik_acme_storage = Unicode(
        "acme.json",
        config=True,
        help="""The file where Traefik keeps the ACME account key and certificates
        (mode 0600: it holds private keys). Keep it across restarts, or every
        Hub start orders a new certificate and meets Let's Encrypt's rate limits.""",
    )
    traefik_http_port = Integer(
        80,
        config=True,
        help="""Port of the plain-HTTP entrypoint that exists with Let's Encrypt on:
        it answers HTTP-01 challenges and redirects everything else to https.
        The ACME server always connects to port 80: forward 80 to this port if
        you change it. 0: no plain-HTTP entrypoint (only with 'tls-alpn-01').""",
    )
    traefik_hsts = Bool(
        False,
        config=True,
        help="""Send Strict-Transport-Security on every https answer (and make the
        http->https redirect permanent). Browsers then refuse plain HTTP for the
        domain for traefik_hsts_max_age: turn it on once HTTPS works.""",
    )
    traefik_hsts_max_age = Integer(
        acme.HSTS_DEFAULT_MAX_AGE, config=True, help="max-age of the HSTS header, in seconds"
    )

    @property
    def letsencrypt_enabled(self) -> bool:
        return bool(self.traefik_letsencrypt_email)

    # ------------------------------------------------------------ settings

    def _letsencrypt_settings(self) -> acme.AcmeSettings:
        """The validated settings; ValueError naming every problem and its fix."""
        listen_host, _, port = public_address(self.public_url).rpartition(":")
        # JupyterHub's public_url names the Hub; the proxy's is the bind URL
        name = acme.certificate_host(getattr(self.app, "public_url", "") or "", self.public_url)
        problems = acme.settings_problems(
            email=self.traefik_letsencrypt_email,
            domains=self.traefik_letsencrypt_domains,
            host=name,
            https_port=int(port),
            server=self.traefik_acme_server,
            challenge=self.traefik_acme_challenge,
            http_port=self.traefik_http_port,
            replicas=self.traefik_replica_api_urls,
        )
        if problems:
            raise ValueError("Let's Encrypt cannot start: " + "\n  ".join(["", *problems]))
        http_entrypoint = ""
        if self.traefik_http_port:
            taken = [self.traefik_entrypoint, self.traefik_api_entrypoint]
            http_entrypoint = acme.http_entrypoint_name(taken)
        return acme.AcmeSettings(
            email=self.traefik_letsencrypt_email,
            domains=acme.effective_domains(self.traefik_letsencrypt_domains, name),
            server=self.traefik_acme_server,
            challenge=self.traefik_acme_challenge,
            storage=os.path.abspath(self.traefik_acme_storage),
            entrypoint=self.traefik_entrypoint,
            http_entrypoint=http_entrypoint,
            http_address=f"{listen_host}:{self.traefik_http_port}",
            namespace=self.traefik_namespace,
            provider=self.provider_name,
            hsts_max_age=self.traefik_hsts_max_age if self.traefik_hsts else 0,
        )

    def _letsencrypt_check(self) -> None:
        """At start: refuse unusable settings, make the storage file private."""
        if not self.letsencrypt_enabled:
            changed = [n for n, d in _NEEDS_EMAIL.items() if getattr(self, n) != d]
            message = acme.settings_without_email(changed)
            if message:
                raise ValueError(message)
            return
        settings = self._letsencrypt_settings()
        self._private_storage(Path(settings.storage))
        self.log.info(
            "Let's Encrypt: Traefik obtains a certificate for %s from %s (%s); "
            "until it arrives HTTPS is served with Traefik's default certificate",
            ", ".join(settings.domains),
            settings.server,
            settings.challenge,
        )

    def _private_storage(self, path: Path) -> None:
        # Traefik refuses a storage file others can read, and then runs with
        # no ACME at all; tightening our own file is the fix it asks for
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return  # Traefik creates it, 0600
        if mode & 0o077:
            self.log.warning(
                "traefik_acme_storage %s had mode %o; set it to 0600 (it holds private keys)",
                path,
                mode,
            )
            path.chmod(0o600)

    # ------------------------------------------------------------ config

    def _letsencrypt_static_config(self, config: dict[str, Any]) -> dict[str, Any]:
        if not self.letsencrypt_enabled:
            return config
        config = deep_merge(config, acme.static_fragment(self._letsencrypt_settings()))
        # JSON lines, so the log reader finds ACME failures by their fields
        return deep_merge(config, JSON_LOG_CONFIG)

    def _letsencrypt_dynamic_config(self, config: dict[str, Any]) -> dict[str, Any]:
        if not self.letsencrypt_enabled:
            return config
        config = deep_merge(config, acme.dynamic_fragment(self._letsencrypt_settings()))
        if self.ssl_cert and self.ssl_key:
            # the files serve until (and beside) the ACME certificate
            config = deep_merge(config, tls_fragment(self.ssl_cert, self.ssl_key))
        return config

    # ------------------------------------------------------------ Traefik's log

    @property
    def _letsencrypt_pipe(self) -> int | None:
        """stdout/stderr for traefik: piped to the log reader with Let's Encrypt on."""
        return asyncio.subprocess.PIPE if self.letsencrypt_enabled else None

    def _letsencrypt_watch_log(self, process: asyncio.subprocess.Process) -> None:
        if not hasattr(self, "_traefik_log"):
            self._traefik_log = TraefikLogForwarder(self.log, self._explain_traefik_record)
        self._traefik_log.watch(process)

    async def _letsencrypt_drain_log(self) -> None:
        if hasattr(self, "_traefik_log"):
            await self._traefik_log.drain()

    def _explain_traefik_record(self, record: Mapping[str, Any]) -> str | None:
        failure = acme.certificate_failure(
            record, server=self.traefik_acme_server, challenge=self.traefik_acme_challenge
        )
        return failure.message() if failure else None
