"""Two Traefik replicas on one store, as behind a load balancer: one dies.

Both are run as an operator runs them (``should_start = False``): A at the
Hub's ``traefik_api_url``, B in ``traefik_replica_api_urls``. A Traefik whose
API refuses connections serves nothing, so ``add_route`` does not wait for
it (a warning names it) and the other serves the route; started again, it
reads the whole store and serves every route.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

from .ha_support import ListHandler, assert_served, timed
from .proxies import make_proxy, served_by
from .servers import start_traefik, stop_process
from .utils import wait_for

#: add_route with one replica down: as quick as with both up, far below check_route_timeout
PROMPT = 3.0


async def test_a_replica_down_is_not_waited_for(request, tmp_path, backends):
    password = secrets.token_hex(16)
    hub = make_proxy(
        "etcd", request, tmp_path / "a",
        should_start=False, check_route_timeout=10, traefik_api_password=password,
    )
    traefik = {"a": start_traefik(hub)}
    replica = make_proxy(
        "etcd", request, tmp_path / "b",
        should_start=False,
        traefik_api_password=password,
        kv_traefik_prefix=hub.kv_traefik_prefix,
        kv_jupyterhub_prefix=hub.kv_jupyterhub_prefix,
    )
    traefik["b"] = start_traefik(replica)
    hub.traefik_replica_api_urls = [replica.traefik_api_url]
    public = {"a": hub, "b": replica}
    warnings = ListHandler()
    hub.log.addHandler(warnings)
    routes: dict[str, str] = {}

    async def add(routespec: str, backend: str) -> float:
        seconds, error = await timed(hub.add_route(routespec, backends[backend].url, {}))
        assert error is None, repr(error)
        routes[routespec] = backend
        return seconds

    try:
        await add("/replicas/both/", "a")
        await replica._wait_for_api()
        for config in public.values():
            await assert_served(config, routes)

        for down, up in (("b", "a"), ("a", "b")):
            traefik[down].kill()  # SIGKILL
            traefik[down].wait()
            seconds = await add(f"/replicas/{down}-down/", "b")
            print(f"\nreplicas: add_route with {down} killed returned in {seconds:.2f}s")
            assert seconds < PROMPT
            port = f":{urlsplit(public[down].traefik_api_url).port}"
            assert any("refuses connections" in m and port in m for m in warnings.messages), warnings.messages
            await assert_served(public[up], routes)

            # started again, it reads every route from the store
            restarted = time.monotonic()
            traefik[down] = start_traefik(public[down])
            await wait_for(lambda: serves_all(public[down], routes), timeout=20)
            print(f"replicas: {down} serves all {len(routes)} routes "
                  f"{time.monotonic() - restarted:.2f}s after its restart")
            # and is waited for again
            await add(f"/replicas/{down}-back/", "a")
            await assert_served(public[down], routes)
    finally:
        hub.log.removeHandler(warnings)
        for process in traefik.values():
            stop_process(process)
        await replica._close()
        await hub._close()


async def serves_all(config, routes: dict[str, str]) -> bool:
    try:
        for routespec, backend in routes.items():
            if await served_by(config, routespec + "x") != backend:
                return False
    except Exception:  # noqa: BLE001 - not listening yet
        return False
    return True
