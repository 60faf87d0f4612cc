"""A 3-member etcd cluster under the proxy: members die, the Hub goes on.

``etcd_url`` lists all three members; the proxy talks to one at a time and
fails over to the next when it stops answering, and Traefik reads all three.
The cluster starts once for the module (tests/clusters.py); every test
leaves all members running. Writes are split into small transactions
(``etcd_max_txn_ops``) so that a kill lands between two transactions of one
change, and after every kill the store holds no router without its route
record. The times measured are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import logging
import time

import pytest

from traefik_proxy.etcd import TraefikEtcdProxy
from traefik_proxy.kv import KVStoreUnavailable

from .clusters import EtcdCluster, tails, wait_until
from .ha_support import (
    ListHandler,
    assert_served,
    burst,
    cluster_proxy,
    etcd_cluster,  # noqa: F401 (the module's cluster)
    routers_without_records,
    timed,
)

#: check_route_timeout while a member dies (an election takes about a second)
TIMEOUT = 10.0
#: check_route_timeout while the cluster has no quorum
NO_QUORUM_TIMEOUT = 5.0
#: how much later than check_route_timeout a failing call may return
MARGIN = 1.5


@pytest.fixture
def cluster(etcd_cluster):
    return etcd_cluster


@pytest.fixture
async def proxy(cluster, tmp_path):
    p = cluster_proxy(
        TraefikEtcdProxy,
        tmp_path,
        etcd_url=cluster.etcd_url,
        check_route_timeout=TIMEOUT,
        # a route's router and record take 7 operations: several per
        # transaction, and a burst takes many transactions
        etcd_max_txn_ops=16,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
        for name in cluster.members:
            cluster.restart(name)


def member_in_use(cluster: EtcdCluster, proxy) -> str:
    """The member the proxy's store client talks to now."""
    store = proxy.kv_store
    _host, port = store._endpoints[store._current]
    return next(name for name, member in cluster.members.items() if member.port == port)


async def test_member_killed_during_a_burst(cluster, proxy, backends):
    before = {f"/etcd-ha/before-{i}/": "a" for i in range(8)}
    for routespec, backend in before.items():
        await proxy.add_route(routespec, backends[backend].url, {})
    adds = {f"/etcd-ha/burst-{i}/": "b" for i in range(30)}
    deletes = list(before)[:4]
    # the hardest case: the member in use is the leader (an election follows)
    victim = cluster.leader()
    proxy.kv_store._current = list(cluster.members).index(victim)
    warnings = ListHandler(logging.WARNING)
    proxy.log.addHandler(warnings)
    try:
        results = await burst(
            proxy,
            {r: backends[b].url for r, b in adds.items()},
            deletes,
            during=lambda: cluster.kill(victim),
        )
    finally:
        proxy.log.removeHandler(warnings)
    failed = {r: repr(call.error) for r, call in results.items() if call.error is not None}
    assert not failed, f"calls failed after SIGKILL of {victim}: {failed}\n{tails(cluster.members)}"
    slowest = max(call.ended - call.started for call in results.values())
    print(
        f"\netcd: SIGKILL of {victim} (in use, the leader) amid {len(results)} calls: "
        f"all done, slowest {slowest:.2f}s"
    )
    assert member_in_use(cluster, proxy) != victim
    assert any(victim_port(cluster, victim) in m for m in warnings.messages), warnings.messages

    expected = {**{r: b for r, b in before.items() if r not in deletes}, **adds}
    assert set(await proxy.get_all_routes()) == set(expected)
    assert not await routers_without_records(proxy)
    # Traefik lost its member too, and serves every confirmed route
    await assert_served(proxy, expected)
    # the killed member comes back and catches up; nothing changes for the Hub
    print(f"etcd: {victim} serving again {cluster.restart(victim):.2f}s after restart")
    await proxy.add_route("/etcd-ha/after/", backends["a"].url, {})
    await assert_served(proxy, {"/etcd-ha/after/": "a"})


def victim_port(cluster: EtcdCluster, name: str) -> str:
    return f"127.0.0.1:{cluster.members[name].port}"


async def test_quorum_lost_then_back(cluster, proxy, backends):
    kept = {f"/etcd-ha/kept-{i}/": "a" for i in range(3)}
    doomed = "/etcd-ha/doomed/"
    for routespec in [*kept, doomed]:
        await proxy.add_route(routespec, backends["a"].url, {})
    proxy.check_route_timeout = NO_QUORUM_TIMEOUT
    in_use = member_in_use(cluster, proxy)
    survivor = next(name for name in cluster.members if name != in_use)
    dead = [name for name in cluster.members if name != survivor]
    for name in dead:
        cluster.kill(name)

    # every call fails, naming the store, by check_route_timeout
    newcomer = "/etcd-ha/no-quorum/"
    for what, call in [
        ("add_route", proxy.add_route(newcomer, backends["b"].url, {})),
        ("delete_route", proxy.delete_route(doomed)),
        ("get_all_routes", proxy.get_all_routes()),
    ]:
        seconds, error = await timed(call)
        print(f"\netcd without quorum: {what} failed after {seconds:.2f}s: {error}")
        assert isinstance(error, KVStoreUnavailable), repr(error)
        assert seconds <= NO_QUORUM_TIMEOUT + MARGIN, seconds
        assert "unreachable" in str(error)
    # Traefik keeps serving what it had
    await assert_served(proxy, kept)

    # one member back: quorum again, and the same proxy object works
    back = cluster.restart(dead[0])
    restored = time.monotonic()
    proxy.check_route_timeout = TIMEOUT
    wait_until(lambda: cluster.healthy(survivor), "quorum back", timeout=20)
    assert not await routers_without_records(proxy)
    seconds, error = await timed(proxy.add_route(newcomer, backends["b"].url, {}))
    assert error is None, repr(error)
    print(
        f"etcd: {dead[0]} restarted in {back:.2f}s; add_route then took {seconds:.2f}s "
        f"({time.monotonic() - restored:.2f}s after the restart)"
    )
    # the delete that failed may still have been applied: an etcd leader
    # that lost its quorum keeps what it appended, and may commit it later
    routes = await proxy.get_all_routes()
    assert set(kept) | {newcomer} <= set(routes) <= set(kept) | {newcomer, doomed}
    await assert_served(proxy, {**kept, newcomer: "b"})
    assert not await routers_without_records(proxy)
