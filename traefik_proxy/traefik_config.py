"""Traefik's configuration from TraefikProxy's traitlets: what it is, and writing it.

:class:`TraefikConfig` is a part of :class:`~traefik_proxy.proxy.TraefikProxy`
kept in a file of its own (a mixin reading the proxy's traitlets): the
settings every route is written with, the API's credentials, the static
config traefik starts with, and the Hub's own dynamic config (API router and
its basic auth, TLS certificates, error pages). The fragments come from
:mod:`traefik_proxy.core`; this feeds them the settings, refuses settings that
cannot work, and writes the result.
"""

from __future__ import annotations

import copy
import inspect
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import core, default_cert
from .files import atomic_write, dump_config
from .traefik_api import hash_password
from .traefik_process import api_address, public_address


def finish_now(step: Any, name: str) -> None:
    """Run a config seam's result to its end without an event loop.

    Seams that compute a config are coroutines in the older project (or plain
    methods returning ``super()``'s coroutine); they do no I/O, so they finish
    at their first step. One that awaits something that does not finish at
    once gets an error saying so.
    """
    if not inspect.isawaitable(step):
        return
    message = (
        f"{name} awaited something that did not finish at once; it must only "
        "compute the config (no I/O): do I/O in start() or _setup_traefik_dynamic_config"
    )
    steps = step.__await__()
    try:
        steps.send(None)
    except StopIteration:
        return
    except RuntimeError as e:
        if "event loop" in str(e):  # asyncio's own awaitables, outside a loop
            raise RuntimeError(message) from e
        raise
    steps.close()
    raise RuntimeError(message)


class TraefikConfig:
    """Config generation of TraefikProxy; subclasses hook in through
    ``_setup_traefik_static_config`` and ``_setup_traefik_dynamic_config``."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy (its traitlets and
        # methods, JupyterHub's Proxy's) and of the other mixins, which the class
        # combining them all defines. Nothing here exists at run time.
        log: logging.Logger
        hub: Any  # jupyterhub.objects.Hub, or None outside JupyterHub
        public_url: str
        should_start: bool
        ssl_cert: str
        ssl_key: str
        traefik_entrypoint: str
        traefik_namespace: str
        traefik_pin_host: str
        traefik_error_pages: bool
        traefik_api_url: str
        traefik_api_entrypoint: str
        traefik_api_username: str
        traefik_api_password: str
        traefik_api_hashed_password: str
        traefik_api_password_hash: str
        traefik_api_password_hash_rounds: int
        traefik_log_level: str
        traefik_providers_throttle_duration: str
        traefik_track_activity: bool
        traefik_dashboard: bool
        traefik_default_cert: bool
        traefik_default_cert_file: str
        static_config_file: str
        static_config: dict[str, Any]
        dynamic_config: dict[str, Any]
        extra_static_config: dict[str, Any]
        extra_dynamic_config: dict[str, Any]
        enable_setup_dynamic_config: bool
        traefik_route_tree_segment: int
        traefik_route_tree_depth: int
        traefik_route_tree_bucket_size: int

        @property
        def letsencrypt_enabled(self) -> bool: ...
        def _letsencrypt_static_config(self, config: dict[str, Any]) -> dict[str, Any]: ...
        def _letsencrypt_dynamic_config(self, config: dict[str, Any]) -> dict[str, Any]: ...
        async def _take_over_legacy_layout(self) -> None: ...
        async def _relayout_routes(self) -> None: ...
        async def _apply_changes(self, changes: core.Changes) -> None: ...

    @property
    def settings(self) -> core.Settings:
        return core.Settings(
            entrypoint=self.traefik_entrypoint,
            namespace=self.traefik_namespace,
            tls=urlsplit(self.public_url).scheme == "https" or self.letsencrypt_enabled,
            pin_host=self.traefik_pin_host,
            error_middleware=self._error_middleware_name if self.traefik_error_pages else "",
            tree_segment=self.traefik_route_tree_segment,
            tree_depth=self.traefik_route_tree_depth,
            tree_bucket_size=self.traefik_route_tree_bucket_size,
        )

    #: the API password this proxy generated, if it did (hashed with SHA-1 under "auto")
    _generated_api_password: str | None = None

    @property
    def _error_middleware_name(self) -> str:
        return f"{self.traefik_namespace}-hub-errors"

    def _generate_password_if_needed(self) -> None:
        """A random API password if none is set (only for a traefik we start), and its hash."""
        if not self.traefik_api_password:
            if self.traefik_api_hashed_password:
                raise ValueError(
                    "traefik_api_hashed_password is set but traefik_api_password is empty; the "
                    "Hub logs in with the password itself: set c.TraefikProxy.traefik_api_password"
                )
            if not self.should_start:
                raise ValueError(
                    "traefik_api_password is empty; with should_start=False set "
                    "c.TraefikProxy.traefik_api_password to the password of the traefik you run"
                )
            self.traefik_api_password = secrets.token_urlsafe(32)
            self._generated_api_password = self.traefik_api_password
            self.log.info("Generated a random password for Traefik's API")
        if not self.traefik_api_hashed_password:
            scheme = self.traefik_api_password_hash
            if scheme == "auto":
                generated = self.traefik_api_password == self._generated_api_password
                scheme = "sha1" if generated else "bcrypt"
            self.traefik_api_hashed_password = hash_password(
                self.traefik_api_password, self.traefik_api_password_hash_rounds, scheme
            )

    def traefik_static_config(self) -> dict[str, Any]:
        """Traefik's static config for these settings: entrypoints, API, provider.

        The proxy starts traefik with it; to run traefik yourself
        (``should_start = False``), start it with this. Computed afresh each
        time by the ``_setup_traefik_static_config`` chain, from what
        ``static_config`` held before the first computation; the result is
        also left in ``static_config``.
        """
        if self._static_config_seed is None:
            self._static_config_seed = copy.deepcopy(self.static_config)
        self.static_config = copy.deepcopy(self._static_config_seed)
        finish_now(self._setup_traefik_static_config(), "_setup_traefik_static_config")
        return self.static_config

    # its name before it was public; tests/test_kv.py still calls it so
    _generate_traefik_static_config = traefik_static_config

    #: static_config as it was before this proxy first computed it
    _static_config_seed: dict[str, Any] | None = None

    async def _setup_traefik_static_config(self) -> None:
        """The seam of the static config, as jupyterhub-traefik-proxy has it.

        A subclass adds its provider to ``self.static_config``, then calls
        this (``await super()._setup_traefik_static_config()``, or returns it
        from a plain method), which puts the base config (entrypoints, API,
        log, metrics) under it and Let's Encrypt and extra_static_config over
        it. It must only compute: :meth:`traefik_static_config` runs the chain
        without an event loop.
        """
        base = core.static_config(
            entrypoint=self.traefik_entrypoint,
            public_address=public_address(self.public_url),
            api_entrypoint=self.traefik_api_entrypoint,
            api_address=api_address(self.traefik_api_url),
            tls=self.settings.tls,
            log_level=self.traefik_log_level,
            throttle_duration=self.traefik_providers_throttle_duration,
            metrics=self.traefik_track_activity,
            api_tls=urlsplit(self.traefik_api_url).scheme == "https",
            dashboard=self.traefik_dashboard,
        )
        config = self._letsencrypt_static_config(core.deep_merge(base, self.static_config))
        self.static_config = core.deep_merge(config, self.extra_static_config)

    def _generate_traefik_dynamic_config(self) -> dict[str, Any]:
        """The dynamic config the Hub's own setup needs: API router, TLS, extras."""
        config: dict[str, Any] = {}
        if self.enable_setup_dynamic_config:
            config = core.api_fragment(
                entrypoint=self.traefik_api_entrypoint,
                username=self.traefik_api_username,
                hashed_password=self.traefik_api_hashed_password,
                name=f"{self.traefik_namespace}-traefik-api",
                metrics=self.traefik_track_activity,
                dashboard=self.traefik_dashboard,
            )
            if self.settings.tls and not self.letsencrypt_enabled:
                if not (self.ssl_cert and self.ssl_key):
                    raise ValueError(
                        f"public_url {self.public_url!r} is https but JupyterHub's "
                        "ssl_cert/ssl_key are not set; set c.JupyterHub.ssl_cert and ssl_key "
                        "(or c.TraefikProxy.traefik_letsencrypt_email for Let's Encrypt)"
                    )
                config = core.deep_merge(config, core.tls_fragment(self.ssl_cert, self.ssl_key))
            config = self._letsencrypt_dynamic_config(config)
            if self.traefik_default_cert and not core.names_default_certificate(
                core.deep_merge(config, self.extra_dynamic_config)
            ):
                cert = self._default_certificate()
                config = core.deep_merge(config, core.tls_fragment(cert.cert_pem, cert.key_pem))
        if self.traefik_error_pages:
            if self.hub is None:
                raise ValueError(
                    "traefik_error_pages needs the Hub's URL, which JupyterHub sets as "
                    "proxy.hub; outside JupyterHub set proxy.hub before start"
                )
            error_path = self.hub.base_url.rstrip("/") + "/error/{status}"
            config = core.deep_merge(
                config,
                core.error_pages_fragment(self._error_middleware_name, self.hub.host, error_path),
            )
        if self._dynamic_config_seed is None:
            self._dynamic_config_seed = copy.deepcopy(self.dynamic_config)
        config = core.deep_merge(config, self._dynamic_config_seed)
        return core.deep_merge(config, self.extra_dynamic_config)

    #: dynamic_config as it was before this proxy first computed it
    _dynamic_config_seed: dict[str, Any] | None = None

    def _default_certificate(self) -> default_cert.DefaultCertificate:
        """The kept default certificate (created on first use), read once per proxy."""
        if self._default_cert is None:
            self._default_cert = default_cert.load_or_create(self._default_cert_path(), self.log)
        return self._default_cert

    def _default_cert_path(self) -> Path:
        return Path(
            self.traefik_default_cert_file
            or Path(self.static_config_file).with_name("traefik-default-cert.pem")
        )

    _default_cert: default_cert.DefaultCertificate | None = None

    def _write_static_config(self) -> None:
        """Write :meth:`traefik_static_config` to ``static_config_file``."""
        path = Path(self.static_config_file)
        atomic_write(path, dump_config(self.traefik_static_config(), path))
        self._written_static_config = path
        self.log.debug("Wrote Traefik's static config to %s", path)

    # the file this proxy wrote, removed at stop so no later traefik loads it
    _written_static_config: Path | None = None

    def _remove_static_config(self) -> None:
        if self._written_static_config is not None:
            self._written_static_config.unlink(missing_ok=True)
            self._written_static_config = None

    async def _setup_traefik_dynamic_config(self) -> None:
        """Write the Hub's own dynamic config (API router, TLS) to the store,
        once the old project's layout is taken over (its routers would outrank ours)."""
        await self._take_over_legacy_layout()
        await self._relayout_routes()
        config = self.dynamic_config = self._generate_traefik_dynamic_config()
        if config:
            self.log.debug("Writing the API router and TLS setup to the dynamic config")
            await self._apply_changes(core.Changes(merge=config))
