"""One keyspace event per write on Redis (``redis_one_event_per_write``).

Traefik's Redis provider re-reads its whole prefix on every keyspace event
that matches it, and Redis sends one per key written. These tests count the
events a real valkey sends while a real Traefik and the Hub's proxy run: one
per ``add_route`` with the setting on (its default), one per key without.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio

from .proxies import make_proxy, served_by, serves
from .utils import Backend, wait_for

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
async def backend():
    server = await Backend("a").start()
    yield server
    await server.stop()


class KeyspaceEvents:
    """Every keyspace event of the keys under a prefix, as Traefik subscribes to them."""

    def __init__(self, url: str, prefix: str):
        self.client = redis.asyncio.from_url(url, decode_responses=True)
        self.pattern = f"__keyspace*:{prefix}*"
        self.events: list[tuple[str, str]] = []

    async def __aenter__(self) -> KeyspaceEvents:
        self.pubsub = self.client.pubsub()
        await self.pubsub.psubscribe(self.pattern)
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "pmessage":
                self.events.append((message["channel"].split(":", 1)[1], message["data"]))

    async def settle(self) -> list[tuple[str, str]]:
        """The events so far, once none has come for a moment."""
        seen = -1
        while seen != len(self.events):
            seen = len(self.events)
            await asyncio.sleep(0.3)
        events, self.events = self.events, []
        return events

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await self.pubsub.aclose()
        await self.client.aclose()


async def started(request, tmp_path, name: str, **traits):
    proxy = make_proxy("redis", request, tmp_path / name, **traits)
    await proxy.start()
    # the Hub's own route: the buckets of the route tree fall back to it
    await proxy.add_route("/", "http://127.0.0.1:9", {"hub": True})
    return proxy


async def test_one_event_per_write(redis_server, backend, tmp_path, request):
    proxy = await started(request, tmp_path, "on")
    try:
        trigger = f"{proxy.kv_traefik_prefix}.written"
        async with KeyspaceEvents(redis_server.url, proxy.kv_traefik_prefix) as events:
            await events.settle()
            # a route in a new bucket: its keys and its buckets', one write
            await proxy.add_route("/user/alice/", backend.url, {"user": "alice"})
            assert await events.settle() == [(trigger, "hincrby")]
            assert await served_by(proxy, "/user/alice/x") == "a"
            # a route in a bucket that exists: its 4 keys and its record
            await proxy.add_route("/user/alan/", backend.url, {"user": "alan"})
            assert await events.settle() == [(trigger, "hincrby")]
            assert await served_by(proxy, "/user/alan/x") == "a"
            await proxy.delete_route("/user/alice/")
            assert await events.settle() == [(trigger, "hincrby")]
            await wait_for(lambda: serves(proxy, "/user/alice/x", None))
            assert await served_by(proxy, "/user/alan/x") == "a"
        async with redis.asyncio.from_url(redis_server.url, decode_responses=True) as client:
            # Redis writes the classes in its own order ("hK")
            assert set((await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]) == set(
                "Kh"
            )
            # Traefik's listing (SCAN of the prefix, then MGET) reads the hash as nil
            assert (await client.mget([trigger])) == [None]
    finally:
        await proxy.stop()


async def test_off_each_key_is_an_event(redis_server, backend, tmp_path, request):
    # as Traefik sets it at start, and our other proxies' writes set it back to Kh
    async with redis.asyncio.from_url(redis_server.url) as client:
        await client.config_set("notify-keyspace-events", "KEA")
    proxy = await started(request, tmp_path, "off", redis_one_event_per_write=False)
    try:
        async with KeyspaceEvents(redis_server.url, proxy.kv_traefik_prefix) as events:
            await events.settle()
            await proxy.add_route("/user/alice/", backend.url, {"user": "alice"})
            await proxy.add_route("/user/alan/", backend.url, {"user": "alan"})
            found = await events.settle()
        keys = [key for key, _ in found]
        # the second route alone: rule, service, parentRefs/0 and the server url
        assert len([k for k in keys if "-user-alan-" in k]) == 4, found
        assert not any(k.endswith(".written") for k in keys)
        assert await served_by(proxy, "/user/alan/x") == "a"
    finally:
        await proxy.stop()


async def test_config_refused_warns_once_and_routes_still_go_live(
    redis_server, backend, tmp_path, request, caplog
):
    """A Hub user without CONFIG (managed Redis, least privilege): every key
    is an event again, as before; the Hub says so once and works on."""
    async with redis.asyncio.from_url(redis_server.url) as client:
        await client.config_set("notify-keyspace-events", "KEA")
        await client.acl_setuser(
            "noconfig", enabled=True, passwords=["+noconfig-pass"], keys=["*"], channels=["*"],
            commands=["+@all", "-config"],
        )  # fmt: skip
    caplog.set_level(logging.WARNING)
    proxy = await started(
        request, tmp_path, "refused", redis_username="noconfig", redis_password="noconfig-pass"
    )
    try:
        await proxy.add_route("/user/alice/", backend.url, {"user": "alice"})
        await proxy.add_route("/user/alan/", backend.url, {"user": "alan"})
        assert await served_by(proxy, "/user/alice/x") == "a"
        assert await served_by(proxy, "/user/alan/x") == "a"
        warnings = [r.getMessage() for r in caplog.records if "notify-keyspace-events" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "redis_one_event_per_write" in warnings[0] and "CONFIG" in warnings[0]
        async with redis.asyncio.from_url(redis_server.url, decode_responses=True) as client:
            assert set((await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]) != set(
                "Kh"
            )
    finally:
        await proxy.stop()
