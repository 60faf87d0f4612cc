"""Consul goes away and comes back, as tests/test_store_outage.py does for etcd and Redis.

Each test starts its own Consul (the in-process stand-in of
:mod:`tests.consul_standin` unless a ``consul`` binary is on PATH), so
stopping it leaves the session's shared one alone. Neither keeps data across
a restart (the stand-in is in memory; ``consul agent -dev`` too): Consul
comes back empty, like the test Redis. While it is down, every call fails
within ``check_route_timeout`` with :class:`KVStoreUnavailable` naming it;
once it is back on the same port, the same proxy object works again, the
Hub's own Traefik config (the API router confirmations go through) is
written again, and JupyterHub's ``check_routes`` puts the routes back.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

from traefik_proxy import core
from traefik_proxy.consul import TraefikConsulProxy
from traefik_proxy.kv import KVStoreUnavailable

from . import servers
from .consul_standin import ConsulStandin
from .kv_support import consul_traits, kv_prefixes
from .proxies import make_proxy, served_by
from .test_store_outage import (
    TIMEOUT,
    assert_clear_unreachable,
    assert_restored,
    assert_whole_or_absent,
    check_routes,
    timed,
)
from .utils import hub_objects


def stop_consul(server: servers.KVServer) -> None:
    if server.standin is not None:
        server.standin.stop()
    else:
        servers.stop_process(server.process)


def restart_consul(server: servers.KVServer) -> None:
    """The same Consul again, on the same port (and empty)."""
    port = int(server.url.rsplit(":", 1)[1])
    if server.standin is not None:
        server.standin = ConsulStandin(port, token=server.password).start()
        return
    with open(server.log, "ab") as out:
        server.process = subprocess.Popen(
            server.process.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def up():
        import urllib.request

        with urllib.request.urlopen(f"{server.url}/v1/status/leader", timeout=2) as r:
            return len(r.read()) > 2

    servers._wait_until(up, "consul (restarted)", server.process, server.log)


async def setup_keys_stored(proxy) -> bool:
    """Whether the store holds every key of the Hub's own Traefik config."""
    tree = await proxy._kv_get_tree(proxy.kv_traefik_prefix + proxy.kv_separator)
    return bool(proxy._kv_setup_keys) and proxy._kv_setup_keys.items() <= tree.items()


async def test_consul_outage_and_recovery(backends, tmp_path, request):
    server = servers.start_consul(tmp_path / "consul")
    proxy = make_proxy(
        "consul",
        request,
        tmp_path / "proxy",
        **consul_traits(server),
        **kv_prefixes(),
        check_route_timeout=TIMEOUT,
    )
    prefix = "/consul-outage/"
    users, app, hub = hub_objects(prefix, backends)
    expected = {f"{prefix}user/alice/": "a", f"{prefix}user/bob/": "b", f"{prefix}hub/": "hub"}
    newcomer = f"{prefix}user/carol/"
    print()
    try:
        await proxy.start()
        await check_routes(proxy, users, app, hub)
        await assert_restored(proxy, expected)
        assert await setup_keys_stored(proxy)

        # ------------------------------------------------ Consul goes away
        stop_consul(server)
        seconds, error = await timed(proxy.add_route(newcomer, backends["a"].url, {"user": "carol"}))
        assert_clear_unreachable("add_route", seconds, error, server)
        assert isinstance(error, KVStoreUnavailable), repr(error)
        (del_s, del_e), (get_s, get_e) = await asyncio.gather(
            timed(proxy.delete_route(f"{prefix}user/bob/")), timed(proxy.get_all_routes())
        )
        assert_clear_unreachable("delete_route", del_s, del_e, server)
        assert_clear_unreachable("get_all_routes", get_s, get_e, server)
        assert isinstance(del_e, KVStoreUnavailable) and isinstance(get_e, KVStoreUnavailable)
        # traefik keeps serving what it had
        for routespec, backend in expected.items():
            assert await served_by(proxy, routespec + "x") == backend

        # ------------------------------------------------ Consul is back, empty
        restart_consul(server)
        back = time.monotonic()
        assert await proxy.get_all_routes() == {}
        assert not await setup_keys_stored(proxy)
        # Traefik's consul provider reconnects on its own schedule: more time
        proxy.check_route_timeout = 30
        seconds, error = await timed(proxy.add_route(newcomer, backends["a"].url, {"user": "carol"}))
        assert error is None, repr(error)
        print(
            f"  consul: add_route after the restart took {seconds:.2f}s "
            f"({time.monotonic() - back:.2f}s after Consul answered)"
        )
        # the write after the outage put the Hub's own config (API router) back
        assert await setup_keys_stored(proxy)
        assert await served_by(proxy, newcomer + "x") == "a"
        assert await assert_whole_or_absent(proxy, newcomer)
        await proxy.delete_route(newcomer)
        assert not await assert_whole_or_absent(proxy, newcomer)

        await check_routes(proxy, users, app, hub)
        await assert_restored(proxy, expected)
    finally:
        await proxy.stop()
        server.stop()


async def test_consul_back_within_the_timeout_the_call_succeeds(tmp_path):
    """A write made while Consul is down is retried, and succeeds once it is back."""
    server = servers.start_consul(tmp_path / "consul")
    proxy = TraefikConsulProxy(**consul_traits(server), **kv_prefixes(), check_route_timeout=10)
    route = core.make_route("/consul-retry/user/erin/", "http://127.0.0.1:9", {"user": "erin"})
    changes = core.changes_for([core.Op("add", route.routespec, route)], proxy.settings)
    try:
        await proxy._get_jupyterhub_dynamic_config()  # connected while Consul answers
        stop_consul(server)
        write = asyncio.ensure_future(proxy._apply_changes(changes))
        await asyncio.sleep(1.5)
        assert not write.done(), "the write gave up while its deadline was far"
        restart_consul(server)
        started = time.monotonic()
        await asyncio.wait_for(write, 10)
        print(f"\n  consul: the write succeeded {time.monotonic() - started:.2f}s after Consul was back")
        assert await assert_whole_or_absent(proxy, route.routespec)
    finally:
        await proxy._close()
        server.stop()
