"""etcd's own transaction limits: changes are split to fit a server as deployed.

The session's etcd (tests/server_fixtures.py) runs with raised limits so that
other tests can raise the proxy's; here etcd runs with its defaults
(``--max-txn-ops=128``, ``--max-request-bytes=1.5 MiB``), as an operator's
does, and real proxies (real traefik) write batches far larger than that.
The store's ``set``/``delete`` are spied on (the real methods still run), so
the tests see each transaction the proxy sent.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from traefik_proxy.core.kv import txn_bytes

from .instruments import spying
from .kv_support import etcd_traits, kv_prefixes
from .proxies import make_proxy, served_by
from .servers import start_etcd

#: etcd's default --max-txn-ops
ETCD_DEFAULT_MAX_TXN_OPS = 128
#: etcd's default --max-request-bytes (1.5 MiB)
ETCD_DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
ROUTES = 200


@pytest.fixture(scope="module")
def default_etcd(tmp_path_factory):
    """etcd with its default transaction limits, for this module only."""
    server = start_etcd(tmp_path_factory.mktemp("etcd-defaults"), raised_limits=False)
    yield server
    server.stop()


@pytest.fixture
async def started(default_etcd, request, tmp_path):
    """A factory of started etcd proxies on the default etcd; stopped at teardown."""
    proxies = []

    async def start(**traits):
        proxy = make_proxy(
            "etcd",
            request,
            tmp_path / f"proxy{len(proxies)}",
            **etcd_traits(default_etcd),
            **kv_prefixes(),
            **{"check_route_timeout": 60, **traits},
        )
        proxies.append(proxy)
        await proxy.start()
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


def transactions(spy) -> list:
    """What each spied set/delete call got: a mapping or list of keys."""
    return [args[0] for args, _ in spy.calls]


async def test_large_batches_are_split_at_the_default_op_limit(started, backends):
    proxy = await started()
    prefix = f"/ops-{uuid.uuid4().hex[:6]}/"
    specs = [f"{prefix}user/u{i}/" for i in range(ROUTES)]
    with spying(proxy.kv_store, "set", "delete") as (sets, deletes):
        await asyncio.gather(*(proxy.add_route(s, backends["a"].url, {"i": i}) for i, s in enumerate(specs)))
        set_txns = transactions(sets)
        assert await served_by(proxy, specs[0] + "x") == "a"
        assert await served_by(proxy, specs[-1] + "x") == "a"
        routes = await proxy.get_all_routes()
        assert {s: routes[s]["data"] for s in specs} == {s: {"i": i} for i, s in enumerate(specs)}
        await asyncio.gather(*(proxy.delete_route(s) for s in specs))
        delete_txns = transactions(deletes)
    assert not set(specs) & set(await proxy.get_all_routes())
    sizes = [len(t) for t in set_txns]
    # 200 routes are far more keys than one transaction takes: several, each within etcd's limit
    assert sum(sizes) > 4 * ETCD_DEFAULT_MAX_TXN_OPS, sizes
    assert len(set_txns) >= 5 and max(sizes) <= ETCD_DEFAULT_MAX_TXN_OPS, sizes
    # full transactions, not one per key
    assert max(sizes) == ETCD_DEFAULT_MAX_TXN_OPS, sizes
    delete_sizes = [len(t) for t in delete_txns]
    assert sum(delete_sizes) >= 3 * ROUTES, delete_sizes
    assert len(delete_txns) >= 4 and max(delete_sizes) <= ETCD_DEFAULT_MAX_TXN_OPS, delete_sizes


async def test_large_values_are_split_by_bytes(started, backends):
    max_bytes = 200_000
    proxy = await started(etcd_max_txn_bytes=max_bytes)
    prefix = f"/bytes-{uuid.uuid4().hex[:6]}/"
    # ~60 KB of data per route: 30 routes are ~1.8 MB, more than etcd takes in one request
    data = {s: {"blob": f"{i:04d}" + "x" * 60_000} for i, s in enumerate(f"{prefix}u{i}/" for i in range(30))}
    assert sum(len(d["blob"]) for d in data.values()) > ETCD_DEFAULT_MAX_REQUEST_BYTES
    with spying(proxy.kv_store, "set") as (sets,):
        await asyncio.gather(*(proxy.add_route(s, backends["b"].url, d) for s, d in data.items()))
    set_txns = transactions(sets)
    sizes = [sum(txn_bytes(k, v) for k, v in t.items()) for t in set_txns]
    assert max(sizes) <= max_bytes, sizes
    assert sum(sizes) > 6 * max_bytes and len(set_txns) >= 7, sizes
    routes = await proxy.get_all_routes()
    assert {s: routes[s]["data"] for s in data} == data
    assert await served_by(proxy, next(iter(data)) + "x") == "b"
    await asyncio.gather(*(proxy.delete_route(s) for s in data))
    assert not set(data) & set(await proxy.get_all_routes())


async def test_unsplit_batches_are_refused_by_the_default_server(started, backends):
    """The proxy told etcd takes 1000 ops, when it takes 128: the large batch fails.

    So the split is what makes the test above pass, not a lenient server.
    """
    proxy = await started(etcd_max_txn_ops=1000, check_route_timeout=20)
    prefix = f"/unsplit-{uuid.uuid4().hex[:6]}/"
    specs = [f"{prefix}user/u{i}/" for i in range(ROUTES)]
    with spying(proxy.kv_store, "set") as (sets,):
        outcomes = await asyncio.gather(
            *(proxy.add_route(s, backends["a"].url, {}) for s in specs), return_exceptions=True
        )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    # the first add runs alone (small enough); the rest queue up into one batch
    assert len(failed) >= ROUTES - 1, outcomes
    messages = {str(e) for e in failed}
    print(f"\n  etcd refused the unsplit batch: {messages}")
    assert any("too many operations in txn request" in m for m in messages), messages
    # the error names the store and the setting to change, not just gRPC's status
    assert all(proxy.kv_store.label in m and "etcd_max_txn_ops" in m for m in messages), messages
    assert max(len(t) for t in transactions(sets)) > ETCD_DEFAULT_MAX_TXN_OPS
    # nothing of the refused batch was written
    assert len(set(specs) & set(await proxy.get_all_routes())) <= ROUTES - len(failed)


async def test_unsplit_large_values_are_refused_by_the_default_server(started, backends):
    """The proxy told etcd takes 10 MB requests, when it takes 1.5 MiB: a batch of
    routes with ~64 KiB data each fails (25 of them, 128 operations, are 1.6 MiB).

    So the byte split is what makes test_large_values_are_split_by_bytes pass.
    """
    proxy = await started(etcd_max_txn_bytes=10_000_000, check_route_timeout=20)
    prefix = f"/unsplit-bytes-{uuid.uuid4().hex[:6]}/"
    specs = [f"{prefix}user/u{i}/" for i in range(60)]
    big = {"blob": "x" * 65_000}  # just under the 64 KiB a route's data may have
    outcomes = await asyncio.gather(
        *(proxy.add_route(s, backends["a"].url, big) for s in specs), return_exceptions=True
    )
    messages = {str(o) for o in outcomes if isinstance(o, BaseException)}
    print(f"\n  etcd refused the unsplit batch: {messages}")
    # etcd's own refusal, or its gRPC server's for a request well over the limit
    assert any("request is too large" in m or "received message larger than max" in m for m in messages), (
        messages
    )
    assert all(proxy.kv_store.label in m and "etcd_max_txn_bytes" in m for m in messages), messages
