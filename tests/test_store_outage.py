"""The store goes away: etcd or Redis stops while the Hub keeps changing routes.

Each test starts its own store server (so stopping it leaves the session's
shared servers alone) and its own proxy; the route tests run a real traefik.
While the store is down, every call must fail within ``check_route_timeout``
with an error that names the store and says it is unreachable, and Traefik
must keep serving the routes it has. Once the store is back on the same port,
the same proxy object works again; Redis without persistence comes back
empty, and JupyterHub's own ``Proxy.check_routes`` puts every route back.

Also: a store that accepts connections but never answers (SIGSTOP) hangs no
call, a Redis restarted while the Hub is idle is repaired on the next write,
and no failed call leaves a route half-written (router, service and record
are all present or all absent, or the record stays so the Hub can finish).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path

import pytest

from traefik_proxy import core

from . import servers
from .kv_support import etcd_traits, kv_prefixes, redis_traits
from .proxies import make_proxy, served_by
from .utils import hub_objects

KINDS = ["etcd", "redis"]
#: check_route_timeout of the proxies here
TIMEOUT = 5.0
#: how much later than check_route_timeout a failing call may return
MARGIN = 1.5


# ---------------------------------------------------------------- helpers


def start_store(kind: str, directory: Path) -> servers.KVServer:
    return servers.start_etcd(directory) if kind == "etcd" else servers.start_redis(directory)


def stop_store(server: servers.KVServer) -> None:
    server.process.terminate()
    server.process.wait(10)


def restart_store(server: servers.KVServer) -> None:
    """Start the store again with its first command line: same port, same data dir.

    etcd keeps its data; the test Redis has no persistence (``save ""``,
    no AOF), so it comes back empty.
    """
    assert server.process.poll() is not None
    with open(server.log, "ab") as out:
        server.process = subprocess.Popen(
            server.process.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    port = int(server.url.rsplit(":", 1)[1])

    def up():
        if server.kind == "etcd":
            import etcd3

            client = etcd3.client("127.0.0.1", port, timeout=2)
            try:
                client.status()
                return True
            finally:
                client.close()
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            return client.ping()
        finally:
            client.close()

    servers._wait_until(up, f"{server.kind} (restarted)", server.process, server.log)


async def timed(call) -> tuple[float, BaseException | None]:
    """(seconds, the exception raised or None) of one awaited call."""
    started = time.monotonic()
    try:
        await call
    except Exception as e:
        return time.monotonic() - started, e
    return time.monotonic() - started, None


def assert_clear_unreachable(
    what: str, seconds: float, error: BaseException | None, server, timeout: float = TIMEOUT
) -> None:
    print(f"  {server.kind}: {what} failed after {seconds:.2f}s: {error}")
    assert error is not None, f"{what} succeeded while {server.kind} was down"
    assert seconds <= timeout + MARGIN, f"{what} took {seconds:.2f}s (check_route_timeout={timeout})"
    message = str(error)
    address = server.url.split("://", 1)[1]
    assert address in message, f"{what}: the error does not name the store: {message!r}"
    assert "unreachable" in message.lower(), f"{what}: {message!r}"
    assert isinstance(error, (ConnectionError, RuntimeError)), type(error)
    # not a bare client-library exception
    assert type(error).__module__.startswith("traefik_proxy"), type(error)


async def route_parts(proxy, routespec: str) -> tuple[bool, bool, bool]:
    """Whether the store holds (router, service, record) of a route."""
    name = core.route_name(routespec, proxy.traefik_namespace)
    sep = proxy.kv_separator
    http = f"{proxy.kv_traefik_prefix}{sep}http{sep}"
    router = await proxy._kv_call("read", proxy._kv_get_tree, f"{http}routers{sep}{name}{sep}")
    service = await proxy._kv_call("read", proxy._kv_get_tree, f"{http}services{sep}{name}{sep}")
    record = await proxy._get_route_record(name)
    return bool(router), bool(service), record is not None


async def settled_parts(proxy, routespec: str) -> tuple[bool, bool, bool]:
    """:func:`route_parts` once two reads in a row agree. Its three reads are
    not one snapshot: a write the Hub gave up on, applied by a store that
    wakes up, can land between them (seen once: router read before it,
    service and record after). A route really left half-written reads the
    same every time."""
    last = await route_parts(proxy, routespec)
    for _ in range(20):
        parts = await route_parts(proxy, routespec)
        if parts == last:
            break
        last = parts
    return last


async def assert_whole_or_absent(proxy, routespec: str) -> bool:
    """A route is all there (router, service, record) or not at all; return which."""
    parts = await settled_parts(proxy, routespec)
    assert len(set(parts)) == 1, f"{routespec} is half-written: (router, service, record) = {parts}"
    present = parts[0]
    assert (routespec in await proxy.get_all_routes()) == present
    return present


async def assert_restored(proxy, expected: dict[str, str]) -> None:
    """Exactly the ``expected`` routes (routespec -> backend) are listed, whole and served."""
    assert set(await proxy.get_all_routes()) == set(expected)
    for routespec, backend in expected.items():
        assert await assert_whole_or_absent(proxy, routespec)
        assert await served_by(proxy, routespec + "x") == backend


async def check_routes(proxy, users, app, hub) -> None:
    """What the Hub does at start and periodically: JupyterHub's own check_routes."""
    proxy.app, proxy.hub = app, hub
    try:
        await proxy.check_routes(users, {})
    finally:
        proxy.app = proxy.hub = None


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("kind", KINDS)
async def test_store_outage_and_recovery(kind, backends, tmp_path, request):
    server = start_store(kind, tmp_path / "store")
    traits = etcd_traits(server) if kind == "etcd" else redis_traits(server)
    proxy = make_proxy(
        kind, request, tmp_path / "proxy", **traits, **kv_prefixes(), check_route_timeout=TIMEOUT
    )
    prefix = "/outage/"
    users, app, hub = hub_objects(prefix, backends)
    alice, bob, hub_route = f"{prefix}user/alice/", f"{prefix}user/bob/", f"{prefix}hub/"
    expected = {alice: "a", bob: "b", hub_route: "hub"}
    newcomer = f"{prefix}user/carol/"
    print()
    try:
        await proxy.start()
        await check_routes(proxy, users, app, hub)
        assert set(await proxy.get_all_routes()) == set(expected)
        for routespec, backend in expected.items():
            assert await served_by(proxy, routespec + "x") == backend

        # ------------------------------------------------ the store goes away
        stop_store(server)

        seconds, error = await timed(proxy.add_route(newcomer, backends["a"].url, {"user": "carol"}))
        assert_clear_unreachable("add_route", seconds, error, server)
        # the Hub goes on: a delete and a listing at once
        (del_s, del_e), (get_s, get_e) = await asyncio.gather(
            timed(proxy.delete_route(bob)), timed(proxy.get_all_routes())
        )
        assert_clear_unreachable("delete_route", del_s, del_e, server)
        assert_clear_unreachable("get_all_routes", get_s, get_e, server)

        # traefik keeps serving what it had
        for routespec, backend in expected.items():
            assert await served_by(proxy, routespec + "x") == backend

        # ------------------------------------------------ the store is back
        restart_store(server)
        back = time.monotonic()

        # nothing half-written by the calls that failed
        assert not await assert_whole_or_absent(proxy, newcomer)
        if kind == "etcd":
            # etcd kept everything; the failed delete deleted nothing
            for routespec in expected:
                assert await assert_whole_or_absent(proxy, routespec)
            assert set(await proxy.get_all_routes()) == set(expected)
        else:
            # Redis without persistence lost every route
            assert await proxy.get_all_routes() == {}

        # the same proxy object works again. Traefik reconnects to the store
        # on its own schedule (its etcd client backs off like gRPC does: the
        # longer the outage, the longer it may take), and only then serves
        # what the Hub writes: give the confirmation more time than the
        # fail-fast checks above, and show how long it took.
        proxy.check_route_timeout = 30
        seconds, error = await timed(proxy.add_route(newcomer, backends["a"].url, {"user": "carol"}))
        assert error is None, repr(error)
        print(
            f"  {kind}: add_route after the restart took {seconds:.2f}s "
            f"({time.monotonic() - back:.2f}s after the store answered)"
        )
        assert await served_by(proxy, newcomer + "x") == "a"
        assert await assert_whole_or_absent(proxy, newcomer)
        seconds, error = await timed(proxy.delete_route(newcomer))
        assert error is None, repr(error)
        print(f"  {kind}: delete_route after the restart took {seconds:.2f}s")
        assert not await assert_whole_or_absent(proxy, newcomer)

        # the Hub's periodic check puts back whatever the store lost
        started = time.monotonic()
        await check_routes(proxy, users, app, hub)
        print(f"  {kind}: check_routes restored the routes in {time.monotonic() - started:.2f}s")
        await assert_restored(proxy, expected)
    finally:
        await proxy.stop()
        server.stop()


async def test_redis_restarted_between_calls_is_repaired(backends, tmp_path, request):
    """Redis restarts (empty) while the Hub is idle: the Hub never sees an error.

    The next write finds the store empty, writes the Hub's Traefik config
    (the API router confirmations go through) again, and JupyterHub's
    check_routes puts the routes back.
    """
    server = start_store("redis", tmp_path / "store")
    proxy = make_proxy(
        "redis", request, tmp_path / "proxy", **redis_traits(server), **kv_prefixes(), check_route_timeout=30
    )
    prefix = "/quiet/"
    users, app, hub = hub_objects(prefix, backends)
    expected = {f"{prefix}user/alice/": "a", f"{prefix}user/bob/": "b", f"{prefix}hub/": "hub"}
    warnings = ListHandler(logging.WARNING)
    proxy.log.addHandler(warnings)
    try:
        await proxy.start()
        await check_routes(proxy, users, app, hub)
        # a first write to an empty store is no loss
        assert not [m for m in warnings.messages if "lost every key" in m]
        stop_store(server)
        restart_store(server)
        back = time.monotonic()
        assert await proxy.get_all_routes() == {}
        await check_routes(proxy, users, app, hub)
        print(f"\n  redis: check_routes after a quiet restart took {time.monotonic() - back:.2f}s")
        assert len([m for m in warnings.messages if "lost every key" in m]) == 1
        await assert_restored(proxy, expected)
    finally:
        proxy.log.removeHandler(warnings)
        await proxy.stop()
        server.stop()


class ListHandler(logging.Handler):
    def __init__(self, level):
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("kind", KINDS)
async def test_store_that_stops_answering_does_not_hang(kind, tmp_path):
    """A store that accepts connections but never answers (SIGSTOP): no call hangs.

    Whether a write the Hub gave up on is applied once the store wakes up
    cannot be known; either way the route is whole or absent.
    """
    import signal

    server = start_store(kind, tmp_path / "store")
    traits = etcd_traits(server) if kind == "etcd" else redis_traits(server)
    proxy = _store_proxy(kind, traits, check_route_timeout=2)
    route = core.make_route("/frozen/user/dave/", "http://127.0.0.1:9", {"user": "dave"})
    changes = core.changes_for([core.Op("add", route.routespec, route)], proxy.settings)
    try:
        await proxy._get_jupyterhub_dynamic_config()  # connected while the store answers
        server.process.send_signal(signal.SIGSTOP)
        try:
            # as TraefikProxy._run_batch does
            write = asyncio.wait_for(proxy._apply_changes(changes), proxy.check_route_timeout)
            seconds, error = await timed(write)
            assert_clear_unreachable("write", seconds, error, server, timeout=2)
            seconds, error = await timed(proxy._get_jupyterhub_dynamic_config())
            assert_clear_unreachable("read", seconds, error, server, timeout=2)
        finally:
            server.process.send_signal(signal.SIGCONT)
        proxy.check_route_timeout = 10
        present = await assert_whole_or_absent(proxy, route.routespec)
        print(f"  {kind}: the write the Hub gave up on is {'present' if present else 'absent'}")
        await proxy._apply_changes(changes)
        assert await assert_whole_or_absent(proxy, route.routespec)
    finally:
        server.process.send_signal(signal.SIGCONT)
        await proxy._close()
        server.stop()


async def test_etcd_deletion_cut_short_leaves_the_record(tmp_path):
    """A deletion split into several transactions, the store lost after the first.

    The route record goes last, so the Hub still lists the route and
    deleting it again, once etcd is back, removes what is left.
    """
    server = start_store("etcd", tmp_path / "store")
    proxy = _store_proxy("etcd", etcd_traits(server), check_route_timeout=2, etcd_max_txn_ops=3)
    routes = [core.make_route(f"/cut/user/u{i}/", "http://127.0.0.1:9", {"i": i}) for i in range(3)]
    ops = [core.Op("add", r.routespec, r) for r in routes]
    await proxy._apply_changes(core.changes_for(ops, proxy.settings))
    delete = proxy._kv_atomic_delete
    calls = 0

    async def first_then_outage(*keys):
        nonlocal calls
        calls += 1
        if calls == 2:
            stop_store(server)
        await delete(*keys)

    proxy._kv_atomic_delete = first_then_outage
    deletes = [core.Op("delete", r.routespec) for r in routes]
    try:
        with pytest.raises(ConnectionError, match="unreachable"):
            await proxy._apply_changes(core.changes_for(deletes, proxy.settings))
        restart_store(server)
        proxy.check_route_timeout = 10
        listed = await proxy._get_jupyterhub_dynamic_config()
        names = {core.route_name(r.routespec, proxy.traefik_namespace) for r in routes}
        parts = [await route_parts(proxy, r.routespec) for r in routes]
        print(f"\n  etcd: after a deletion cut short, (router, service, record) = {parts}")
        assert names <= set(listed), "a route's record went before its Traefik keys"
        await proxy._apply_changes(core.changes_for(deletes, proxy.settings))
        for r in routes:
            assert not await assert_whole_or_absent(proxy, r.routespec)
    finally:
        await proxy._close()
        server.stop()


def _store_proxy(kind: str, traits: dict, **more):
    """A proxy used for its store calls only (no traefik)."""
    from traefik_proxy.etcd import TraefikEtcdProxy
    from traefik_proxy.redis import TraefikRedisProxy

    cls = TraefikEtcdProxy if kind == "etcd" else TraefikRedisProxy
    return cls(**traits, **kv_prefixes(), **more)


@pytest.mark.parametrize("kind", KINDS)
async def test_store_down_at_the_first_call_fails_clearly(kind, tmp_path):
    """A proxy whose store never answered: reads fail within the timeout, naming the store."""
    from .utils import free_port

    port = free_port()  # nothing listens there
    if kind == "etcd":
        traits = {"etcd_url": f"http://127.0.0.1:{port}"}
    else:
        traits = {"redis_url": f"redis://:s3cret-pass@127.0.0.1:{port}/0"}
    proxy = _store_proxy(kind, traits, check_route_timeout=2)
    try:
        started = time.monotonic()
        with pytest.raises((ConnectionError, RuntimeError)) as info:
            await proxy._get_jupyterhub_dynamic_config()
        seconds = time.monotonic() - started
        print(f"\n  {kind}: first read against a closed port failed after {seconds:.2f}s: {info.value}")
        assert seconds <= 2 + MARGIN
        assert f"127.0.0.1:{port}" in str(info.value)
        assert "unreachable" in str(info.value).lower()
        assert "s3cret-pass" not in str(info.value)
    finally:
        await proxy._close()


@pytest.mark.parametrize("kind", ["etcd", "redis", "consul"])
async def test_unreachable_store_fails_clearly_and_in_time(kind, request, tmp_path):
    """A store nobody listens for: the first call fails by check_route_timeout,
    naming the store, for every kind (Consul included, via its stand-in's client)."""
    from traefik_proxy.kv import KVStoreUnavailable

    from .utils import free_port

    url = f"{'redis' if kind == 'redis' else 'http'}://127.0.0.1:{free_port()}"
    proxy = make_proxy(
        kind,
        request,
        tmp_path,
        should_start=False,
        traefik_api_password="x",
        check_route_timeout=TIMEOUT,
        **{f"{kind}_url": url},
    )
    started = time.monotonic()
    with pytest.raises(KVStoreUnavailable, match=url.split("://")[1]):
        await proxy.add_route("/user/nowhere/", "http://127.0.0.1:1", {})
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + MARGIN, elapsed
    await proxy._close()
