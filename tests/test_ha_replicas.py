"""Two Traefik replicas on one store, as behind a load balancer: one dies.

Both are run as an operator runs them (``should_start = False``): A at the
Hub's ``traefik_api_url``, B in ``traefik_replica_api_urls``. A Traefik whose
API refuses connections serves nothing, so ``add_route`` does not wait for
it (a warning names it) and the other serves the route; started again, it
reads the whole store and serves every route.
"""

from __future__ import annotations

import logging
import secrets
import time
from urllib.parse import urlsplit

from .ha_support import ListHandler, assert_served, timed
from .proxies import make_proxy, served_by
from .servers import start_traefik, stop_process
from .utils import wait_for

#: add_route with one replica down: as quick as with both up, far below check_route_timeout
PROMPT = 3.0


class Replicas:
    """Traefik A (the Hub's ``traefik_api_url``) and B (a replica), run by the test."""

    def __init__(self, hub, replica, backends):
        self.hub, self.backends = hub, backends
        self.configs = {"a": hub, "b": replica}
        self.processes = {name: start_traefik(config) for name, config in self.configs.items()}
        self.routes: dict[str, str] = {}  # routespec -> backend, every route confirmed
        self.warnings = ListHandler(logging.WARNING)
        hub.log.addHandler(self.warnings)

    async def add(self, routespec: str, backend: str) -> float:
        seconds, error = await timed(self.hub.add_route(routespec, self.backends[backend].url, {}))
        assert error is None, repr(error)
        self.routes[routespec] = backend
        return seconds

    async def kill_then_restart(self, down: str, up: str) -> None:
        self.processes[down].kill()  # SIGKILL
        self.processes[down].wait()
        seconds = await self.add(f"/replicas/{down}-down/", "b")
        print(f"\nreplicas: add_route with {down} killed returned in {seconds:.2f}s")
        assert seconds < PROMPT
        port = f":{urlsplit(self.configs[down].traefik_api_url).port}"
        messages = self.warnings.messages
        assert any("refuses connections" in m and port in m for m in messages), messages
        await assert_served(self.configs[up], self.routes)

        # started again, it reads every route from the store
        restarted = time.monotonic()
        self.processes[down] = start_traefik(self.configs[down])
        await wait_for(lambda: serves_all(self.configs[down], self.routes), timeout=20)
        print(
            f"replicas: {down} serves all {len(self.routes)} routes "
            f"{time.monotonic() - restarted:.2f}s after its restart"
        )
        # and is waited for again
        await self.add(f"/replicas/{down}-back/", "a")
        await assert_served(self.configs[down], self.routes)

    async def close(self) -> None:
        self.hub.log.removeHandler(self.warnings)
        for process in self.processes.values():
            stop_process(process)
        for config in self.configs.values():
            await config._close()


async def test_a_replica_down_is_not_waited_for(request, tmp_path, backends):
    password = secrets.token_hex(16)
    hub = make_proxy(
        "etcd",
        request,
        tmp_path / "a",
        should_start=False,
        check_route_timeout=10,
        traefik_api_password=password,
    )
    replica = make_proxy(
        "etcd",
        request,
        tmp_path / "b",
        should_start=False,
        traefik_api_password=password,
        kv_traefik_prefix=hub.kv_traefik_prefix,
        kv_jupyterhub_prefix=hub.kv_jupyterhub_prefix,
    )
    hub.traefik_replica_api_urls = [replica.traefik_api_url]
    replicas = Replicas(hub, replica, backends)
    try:
        await replicas.add("/replicas/both/", "a")
        await replica._wait_for_api()
        for config in replicas.configs.values():
            await assert_served(config, replicas.routes)
        await replicas.kill_then_restart("b", "a")
        await replicas.kill_then_restart("a", "b")
    finally:
        await replicas.close()


async def serves_all(config, routes: dict[str, str]) -> bool:
    try:
        for routespec, backend in routes.items():
            if await served_by(config, routespec + "x") != backend:
                return False
    except Exception:
        return False
    return True
