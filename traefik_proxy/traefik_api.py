"""Traefik's API, as the Hub uses it: is it up, and does it serve these routes yet?

:class:`TraefikAPI` holds the HTTP clients (one per Traefik replica), their
credentials and the cap on requests in flight. What counts as *live* is decided
by :mod:`traefik_proxy.core.api`; this module only fetches the payloads and
polls. Every request goes through an httpx transport, so tests can hand in an
``httpx.MockTransport`` instead of a running traefik.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import bcrypt
import httpx

from . import core

#: Routers per page when listing them all (Traefik's default page has 100).
ROUTERS_PER_PAGE = 1000

#: Above this many routes in one batch, confirm with one /api/rawdata listing
#: instead of two small requests per route.
RAWDATA_THRESHOLD = 4


def hash_password(password: str, rounds: int, scheme: str = "bcrypt") -> str:
    """The hash of the API password, as Traefik's basic auth wants it.

    ``bcrypt`` (of cost ``rounds``) for a password a person chose; ``sha1``
    (``{SHA}``, htpasswd's SHA-1) only for a long random one, which no hash
    makes any easier to find: Traefik checks the hash on every API request,
    and a bcrypt check of cost 4 costs it about 1.3 ms of CPU against 0.15 ms.
    """
    if scheme == "sha1":
        return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def not_served(route: core.Route, name: str, timeout: float) -> TimeoutError:
    """The error of an add_route whose route Traefik did not serve in time."""
    return TimeoutError(
        f"Traefik did not serve route {route.routespec!r} -> {route.target!r} "
        f"within check_route_timeout={timeout}s; check traefik's log for errors about "
        f"router {name!r} (with a key-value store, traefik may still be reconnecting to it)"
    )


def _ipv4_if_localhost(url: str) -> str:
    # talk to 127.0.0.1, not "localhost": the entrypoint listens on IPv4
    # only, and trying ::1 first costs every request a refused connection
    parts = urlsplit(url)
    if parts.hostname == "localhost":
        return parts._replace(netloc=parts.netloc.replace("localhost", "127.0.0.1", 1)).geturl()
    return url


class TraefikAPI:
    """Client of one Traefik API, and of the replicas reading the same store.

    ``timeout``, ``poll_interval`` and ``replica_urls`` are plain attributes:
    the proxy updates them when their traitlets change.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        provider: str,
        timeout: float = 30.0,
        poll_interval: float = 0.005,
        replica_urls: Sequence[str] = (),
        concurrency: int = 10,
        verify: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        log: logging.Logger | None = None,
    ):
        self.username = username
        self.provider = provider
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.replica_urls = list(replica_urls)
        self.log = log or logging.getLogger(__name__)
        self._password = password
        self._concurrency = concurrency
        self._verify = verify
        self._transport = transport
        # one cap for all replicas: it bounds what the Hub puts on the network
        self._semaphore = asyncio.Semaphore(concurrency)
        self.client = self._new_client(_ipv4_if_localhost(base_url))
        self._replicas: dict[str, httpx.AsyncClient] = {}
        #: base URLs of the Traefiks found refusing connections (warned about)
        self._down: set[str] = set()

    def _new_client(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url,
            auth=(self.username, self._password),
            verify=self._verify,
            timeout=httpx.Timeout(10.0),
            limits=httpx.Limits(max_connections=self._concurrency),
            transport=self._transport,
        )

    def clients(self) -> list[httpx.AsyncClient]:
        """One client per Traefik whose API must confirm a change: ours, then the replicas."""
        for url in self.replica_urls:
            if url not in self._replicas:
                self._replicas[url] = self._new_client(url)
        return [self.client, *(self._replicas[u] for u in self.replica_urls)]

    async def aclose(self) -> None:
        await self.client.aclose()
        for replica in self._replicas.values():
            await replica.aclose()
        self._replicas = {}

    # ------------------------------------------------------------ requests

    async def get_json(
        self, path: str, missing_ok: bool = False, client: httpx.AsyncClient | None = None
    ) -> Any:
        """GET a JSON payload; None for a 404 if ``missing_ok``."""
        client = client or self.client
        async with self._semaphore:
            response = await client.get(path)
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code == 401:
            raise PermissionError(
                f"Traefik's API at {client.base_url} refused user "
                f"{self.username!r} (401); check traefik_api_username/password"
            )
        response.raise_for_status()
        return response.json()

    async def list_routers(self, per_page: int = ROUTERS_PER_PAGE) -> list[dict[str, Any]]:
        """Every HTTP router Traefik serves, from all pages of /api/http/routers."""
        routers: list[dict[str, Any]] = []
        page = 1
        while True:
            async with self._semaphore:
                response = await self.client.get(
                    "/api/http/routers", params={"per_page": per_page, "page": page}
                )
            response.raise_for_status()
            routers += response.json()
            # the last page names page 1 as the next one
            following = int(response.headers.get("X-Next-Page", "1"))
            if following <= page:
                return routers
            page = following

    async def metrics_text(self) -> str:
        """Traefik's Prometheus metrics (served on the API entrypoint)."""
        async with self._semaphore:
            response = await self.client.get("/metrics")
        response.raise_for_status()
        return response.text

    async def wait_until_answering(self, check: Callable[[], None] | None = None) -> None:
        """Wait until the API answers with our credentials.

        ``check`` is called between attempts and may raise to give up early
        (the traefik we started has exited, say).
        """
        deadline = time.monotonic() + self.timeout
        last_error: Any = None
        while time.monotonic() < deadline:
            if check is not None:
                check()
            try:
                response = await self.client.get("/api/overview")
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as e:
                last_error = repr(e)
            await asyncio.sleep(0.02)
        raise TimeoutError(
            f"Traefik's API at {self.client.base_url} did not answer within "
            f"{self.timeout}s (last: {last_error})"
        )

    # ------------------------------------------------------------ confirmation

    async def wait_for_live(self, expected: Sequence[core.Expected]) -> set[str]:
        """Wait until every replica serves every expected route; the names
        still missing anywhere after ``timeout`` seconds.

        With replicas, a Traefik whose API refuses connections serves nothing
        (it is down, or starting, and reads the whole store when it starts),
        so it is not waited for; a warning names it. One that answers but does
        not serve the route yet is waited for. If none answers, the first is
        waited for as without replicas.
        """
        if not expected:
            return set()
        clients = self.clients()
        if len(clients) == 1:
            return await self._wait_for_live_on(clients[0], expected)
        results = await asyncio.gather(
            *(self._wait_for_live_on(c, expected, skip_if_down=True) for c in clients)
        )
        answering = [missing for missing in results if missing is not None]
        if not answering:
            return await self._wait_for_live_on(clients[0], expected)
        return set().union(*answering)

    # None only with skip_if_down
    @overload
    async def _wait_for_live_on(
        self, client: httpx.AsyncClient, expected: Sequence[core.Expected], skip_if_down: Literal[False] = ...
    ) -> set[str]: ...
    @overload
    async def _wait_for_live_on(
        self, client: httpx.AsyncClient, expected: Sequence[core.Expected], skip_if_down: bool
    ) -> set[str] | None: ...
    async def _wait_for_live_on(
        self,
        client: httpx.AsyncClient,
        expected: Sequence[core.Expected],
        skip_if_down: bool = False,
    ) -> set[str] | None:
        """Poll one Traefik's API until every expected route is live.

        A few routes are checked one by one (two small requests each). For a
        large batch, polling the full listing would load Traefik while it
        rebuilds its routers, so the last route written is polled alone
        first, and the whole batch is checked in one ``/api/rawdata`` listing
        once it is live (or, if it never is, at the deadline). Polls never
        take more than about half of the time: the pause after a poll is at
        least as long as the poll took. None if ``skip_if_down`` and the API
        refuses connections.
        """
        pending = {e.name: e for e in expected}
        sentinel = expected[-1] if len(expected) > RAWDATA_THRESHOLD else None
        deadline = time.monotonic() + self.timeout
        while pending:
            started = time.monotonic()
            try:
                if sentinel is not None:
                    if await self.is_live(sentinel, client):
                        sentinel = None  # now check everything at once
                        continue
                    done = []
                else:
                    done = await self._live_among(pending, client)
                self._note_answering(client)
            except httpx.ConnectError as e:
                if skip_if_down:
                    self._note_down(client, e)
                    return None
                self.log.debug("Traefik API not answering yet: %r", e)
                done = []
            except httpx.HTTPError as e:
                self.log.debug("Traefik API not answering yet: %r", e)
                done = []
            for name in done:
                del pending[name]
            now = time.monotonic()
            if not pending or now > deadline:
                break
            await asyncio.sleep(max(self.poll_interval, now - started))
        if pending and sentinel is not None:
            await self._last_listing(pending, client)
        return set(pending)

    async def _last_listing(self, pending: dict[str, core.Expected], client: httpx.AsyncClient) -> None:
        # the last route never showed: without this listing every route
        # of the batch would fail with it, not only the ones not served
        try:
            for name in await self._live_among(pending, client):
                del pending[name]
        except httpx.HTTPError as e:
            self.log.debug("Traefik API not answering: %r", e)

    def _note_down(self, client: httpx.AsyncClient, error: httpx.ConnectError) -> None:
        """Warn once per outage that a replica is not waited for."""
        url = str(client.base_url)
        if url not in self._down:
            self._down.add(url)
            self.log.warning(
                "Traefik at %s refuses connections (%s): not waiting for it to serve "
                "route changes; it reads every route from the store when it starts",
                url,
                error or type(error).__name__,
            )

    def _note_answering(self, client: httpx.AsyncClient) -> None:
        url = str(client.base_url)
        if url in self._down:
            self._down.discard(url)
            self.log.info("Traefik at %s answers again", url)

    async def _live_among(self, pending: dict[str, core.Expected], client: httpx.AsyncClient) -> list[str]:
        """The names of the pending routes that one poll finds live."""
        if len(pending) > RAWDATA_THRESHOLD:
            rawdata = await self.get_json("/api/rawdata", client=client)
            live = core.live_in_rawdata
            return [n for n, e in pending.items() if live(rawdata, e, self.provider)]
        checks = await asyncio.gather(*(self.is_live(e, client) for e in pending.values()))
        return [n for n, ok in zip(list(pending), checks) if ok]

    async def wait_for_routers(
        self, services: Mapping[str, str] | Sequence[str], present: bool = True
    ) -> set[str]:
        """Wait until Traefik reports every named router (of this provider)
        enabled with its service (``{router: service}``, "" for a router
        with children; a plain list of names with ``present=False``: until it
        reports none of them); the names not so after ``timeout`` seconds.
        For routers that are not a route's (the shards' front tree)."""
        expected = dict(services) if isinstance(services, Mapping) else {}
        pending = set(services)

        def done(name: str, router: Any) -> bool:
            if not present:
                return not router
            service = str((router or {}).get("service", "")).split("@")[0]
            return (
                bool(router)
                and router.get("status") == "enabled"
                and (service == expected.get(name, service))
            )

        deadline = time.monotonic() + self.timeout
        while pending:
            started = time.monotonic()
            order = sorted(pending)
            try:
                if len(order) > RAWDATA_THRESHOLD:
                    routers = (await self.get_json("/api/rawdata")).get("routers") or {}
                    found = [routers.get(f"{n}@{self.provider}") for n in order]
                else:
                    found = await asyncio.gather(
                        *(
                            self.get_json(f"/api/http/routers/{n}@{self.provider}", missing_ok=True)
                            for n in order
                        )
                    )
                pending -= {n for n, r in zip(order, found) if done(n, r)}
            except httpx.HTTPError as e:
                self.log.debug("Traefik API not answering yet: %r", e)
            now = time.monotonic()
            if not pending or now > deadline:
                break
            await asyncio.sleep(max(self.poll_interval, now - started))
        return pending

    async def is_live(self, expected: core.Expected, client: httpx.AsyncClient | None = None) -> bool:
        """True if one Traefik serves the route with the expected target."""
        # the router first: while it is missing or stale there is no need to
        # ask for the service, which halves the polling load during a reload
        key = f"{expected.name}@{self.provider}"
        router = await self.get_json(f"/api/http/routers/{key}", missing_ok=True, client=client)
        if not core.router_matches(router, expected):
            return False
        service = await self.get_json(f"/api/http/services/{key}", missing_ok=True, client=client)
        return core.is_live(router, service, expected)
