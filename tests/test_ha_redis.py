"""Valkey with Sentinel under the proxy: the master dies, the sentinels
promote its replica, the Hub and Traefik follow.

A master, one replica and three sentinels (tests/clusters.py), started once
for the module, with sentinels that call a silent master down after 1 s.
The proxy and Traefik find the master through the sentinels
(``redis_sentinel_master``, ``redis_sentinel_urls``); each write waits until
the replica has it (``WAIT``), so whatever ``add_route`` confirmed survives
the failover. The times measured are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import pytest

from traefik_proxy.redis import TraefikRedisProxy

from .clusters import ValkeySentinelSet, tails
from .ha_support import (
    assert_served,
    burst,
    cluster_proxy,
    routers_without_records,
    sentinel_set,  # noqa: F401 (the module's sentinel set)
)

#: check_route_timeout: a failover (1 s to call the master down, then an
#: election) fits well within it
TIMEOUT = 15.0


@pytest.fixture
async def proxy(sentinel_set, tmp_path):
    p = cluster_proxy(
        TraefikRedisProxy,
        tmp_path,
        # the data nodes' scheme and database; the sentinels name the host
        redis_url="redis://127.0.0.1/0",
        redis_sentinel_master=sentinel_set.master_name,
        redis_sentinel_urls=sentinel_set.sentinel_urls,
        check_route_timeout=TIMEOUT,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def test_traefik_reads_through_the_sentinels(sentinel_set):
    proxy = TraefikRedisProxy(
        redis_url="redis://:secret@127.0.0.1/3",
        redis_sentinel_master="mymaster",
        redis_sentinel_urls=sentinel_set.sentinel_urls,
    )
    block = proxy.traefik_static_config()["providers"]["redis"]
    assert block["endpoints"] == sentinel_set.sentinel_urls
    assert block["sentinel"] == {"masterName": "mymaster"}
    assert block["db"] == 3 and block["password"] == "secret"


async def test_what_waiting_for_the_replica_costs(proxy, backends):
    store = proxy.kv_store
    await proxy.add_route("/redis-ha/warm/", backends["a"].url, {})
    assert store._replicas == 1  # the master reported its replica

    # alternating, so that the machine's load weighs on both alike
    adds: dict[bool, list[float]] = {True: [], False: []}
    writes: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(30):
            wait = store.wait_for_replica = i % 2 == 0
            started = time.perf_counter()
            await proxy.add_route(f"/redis-ha/cost-{i}/", backends["a"].url, {})
            adds[wait].append(time.perf_counter() - started)
        # as many keys as a route has, outside Traefik's prefix: the store alone
        keys = {f"{proxy.kv_jupyterhub_prefix}/cost/{k}": "x" * 40 for k in range(7)}
        for i in range(300):
            wait = store.wait_for_replica = i % 2 == 0
            started = time.perf_counter()
            await store.set(keys)
            writes[wait].append(time.perf_counter() - started)
    finally:
        store.wait_for_replica = True
    ms = {
        k: {w: statistics.median(v[w]) * 1e3 for w in (True, False)}
        for k, v in (("add_route", adds), ("store write", writes))
    }
    print()
    for what, median in ms.items():
        print(
            f"redis: median {what}: {median[True]:.2f} ms with WAIT for the replica, "
            f"{median[False]:.2f} ms without ({median[True] - median[False]:+.2f} ms)"
        )


class MasterKill:
    """SIGKILL of the master (called in a thread amid a burst), and how long
    the sentinels and the store take to get over it."""

    def __init__(self, sentinel_set: ValkeySentinelSet, proxy):
        self.sentinel_set, self.proxy = sentinel_set, proxy
        self.at = 0.0  # time.monotonic() of the kill
        self.promotion: list[float] = []  # seconds until a new master took writes

    def __call__(self) -> None:
        old = self.sentinel_set.master()
        self.sentinel_set.kill(old)
        self.at = time.monotonic()

        def watch():  # the sentinels' failover, beside the burst
            self.promotion.append(self.sentinel_set.wait_for_failover(old, timeout=TIMEOUT))

        threading.Thread(target=watch, daemon=True).start()

    async def first_store_write(self) -> float:
        """Seconds from the kill until a bare write (no Traefik), retried, succeeds."""
        while not self.at:
            await asyncio.sleep(0.01)
        proxy = self.proxy
        probe = {f"{proxy.kv_jupyterhub_prefix}/probe": "1"}
        await proxy._kv_call("write", proxy.kv_store.set, probe)
        return time.monotonic() - self.at


async def test_master_killed_during_a_burst(sentinel_set, proxy, backends):
    before = {f"/redis-ha/before-{i}/": "a" for i in range(8)}
    for routespec, backend in before.items():
        await proxy.add_route(routespec, backends[backend].url, {})
    old = sentinel_set.master()
    kill = MasterKill(sentinel_set, proxy)
    probe = asyncio.create_task(kill.first_store_write())
    adds = {f"/redis-ha/burst-{i}/": "b" for i in range(30)}
    deletes = list(before)[:4]
    targets = {r: backends[b].url for r, b in adds.items()}
    results = await burst(proxy, targets, deletes, during=kill)
    stored = await probe
    failed = {r: repr(call.error) for r, call in results.items() if call.error is not None}
    logs = tails(sentinel_set.nodes)
    assert not failed, f"calls failed after SIGKILL of the master: {failed}\n{logs}"
    sentinel_set.wait_for_failover(old)
    new = sentinel_set.master()
    # writes resume: the first call started after the kill that returned
    after_kill = [call.ended for call in results.values() if call.started >= kill.at]
    print(
        f"\nredis: SIGKILL of master {old}; {new} promoted {kill.promotion[0]:.2f}s after the "
        f"kill, the store took writes {stored:.2f}s and add_route returned "
        f"{min(after_kill) - kill.at:.2f}s after it; all "
        f"{len(results)} calls done {max(c.ended for c in results.values()) - kill.at:.2f}s "
        "after it"
    )
    expected = {**{r: b for r, b in before.items() if r not in deletes}, **adds}
    assert set(await proxy.get_all_routes()) == set(expected)
    assert not await routers_without_records(proxy)
    await assert_served(proxy, expected)

    # the old master returns as a replica of the new one; writes wait for it again
    sentinel_set.restart(old, replica_of=new)
    sentinel_set.wait_replica_of(old, new)
    await proxy.add_route("/redis-ha/after/", backends["a"].url, {})
    assert proxy.kv_store._replicas == 1
    await assert_served(proxy, {"/redis-ha/after/": "a"})
