"""The floor under add_route: how long Traefik itself takes to serve a changed file.

``TraefikFileFloor`` is not a proxy to use. It keeps everything of
TraefikFileProviderProxy except what our add_route adds on top of Traefik:
no validation, no coalescing queue, no fsync, and the wait polls one small
API endpoint (at traefik_poll_interval, as ours). (Concurrent calls, which the benchmark uses
to build its N routes, go through the real proxy.) What it measures is write-to-visible in
Traefik's API, the physics our add_route cannot beat.
"""

from __future__ import annotations

import asyncio
import os

from traefik_proxy import core
from traefik_proxy.files import dump_config
from traefik_proxy.fileprovider import TraefikFileProviderProxy


class TraefikFileFloor(TraefikFileProviderProxy):
    async def _write_unsafely(self, changes: core.Changes) -> None:
        document = changes.apply_to(self._current())
        tmp = self._path.with_name(f".{self._path.name}.floor")
        tmp.write_bytes(dump_config(document, self._path, self._memo))
        os.replace(tmp, self._path)
        st = os.stat(self._path)
        self._document, self._stat = document, (st.st_ino, st.st_mtime_ns, st.st_size)

    _in_flight = 0

    async def add_route(self, routespec, target, data=None):
        # the benchmark builds its N routes with N concurrent calls: those go
        # through the real (coalescing) proxy; a lone call measures the floor
        self._in_flight += 1
        try:
            await asyncio.sleep(0)  # let calls gathered with this one count themselves
            if self._in_flight > 1 or self._coalescer._queue:
                return await super().add_route(routespec, target, data)
            route = core.Route(routespec, target, data or {})
            op = core.Op("add", routespec, route)
            await self._write_unsafely(core.changes_for([op], self.settings))
            name = core.route_name(routespec, self.traefik_namespace)
            while await self._api.get_json(f"/api/http/routers/{name}@file", missing_ok=True) is None:
                await asyncio.sleep(self.traefik_poll_interval)
        finally:
            self._in_flight -= 1

    async def delete_route(self, routespec):
        self._in_flight += 1
        try:
            await asyncio.sleep(0)
            if self._in_flight > 1 or self._coalescer._queue:
                return await super().delete_route(routespec)
            await self._write_unsafely(core.changes_for([core.Op("delete", routespec)], self.settings))
        finally:
            self._in_flight -= 1
