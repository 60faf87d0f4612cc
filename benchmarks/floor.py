"""The floor under add_route: how long Traefik itself takes to serve a change.

The floor classes are not proxies to use. Each keeps everything of one of our
proxy classes (so Traefik runs with the same static and dynamic config: the
API router, the default certificate, the route tree) except what our
add_route adds on top of Traefik: no validation, no coalescing queue, no
route record, no fsync of the file; the route's keys go to the store in one
transaction (one store event); and the wait polls one small API endpoint (at
traefik_poll_interval, as ours). Concurrent calls, which the benchmark uses
to build its N routes, go through the real proxy. What a lone call measures
is write-to-visible in Traefik's API, the physics our add_route cannot beat.
"""

from __future__ import annotations

import asyncio
import os

from traefik_proxy import core
from traefik_proxy.etcd import TraefikEtcdProxy
from traefik_proxy.fileprovider import TraefikFileProviderProxy
from traefik_proxy.files import dump_config
from traefik_proxy.redis import TraefikRedisProxy


class FloorMixin:
    """A lone add_route / delete_route writes Traefik's keys only, and waits plainly."""

    _in_flight = 0

    async def _write_unsafely(self, changes: core.Changes) -> None:
        raise NotImplementedError

    async def _lone(self, op: core.Op) -> bool:
        """Carry ``op`` out the floor's way, unless other calls are in flight (False)."""
        self._in_flight += 1
        try:
            await asyncio.sleep(0)  # let calls gathered with this one count themselves
            if self._in_flight > 1 or self._coalescer._queue:
                return False
            changes, self._route_table = core.plan_batch([op], self.settings, await self._load_route_table())
            changes.records, changes.drop_records = {}, []
            await self._write_unsafely(changes)
            if op.kind == "add":
                name = core.route_name(op.routespec, self.traefik_namespace)
                path = f"/api/http/routers/{name}@{self.provider_name}"
                while await self._api.get_json(path, missing_ok=True) is None:
                    await asyncio.sleep(self.traefik_poll_interval)
            return True
        finally:
            self._in_flight -= 1

    async def add_route(self, routespec, target, data=None):
        route = core.Route(routespec, target, data or {})
        if not await self._lone(core.Op("add", routespec, route)):
            await super().add_route(routespec, target, data)

    async def delete_route(self, routespec):
        if not await self._lone(core.Op("delete", routespec)):
            await super().delete_route(routespec)


class TraefikFileFloor(FloorMixin, TraefikFileProviderProxy):
    async def _write_unsafely(self, changes: core.Changes) -> None:
        document = changes.apply_to(self._current())
        tmp = self._path.with_name(f".{self._path.name}.floor")
        tmp.write_bytes(dump_config(document, self._path, self._memo))
        os.replace(tmp, self._path)
        st = os.stat(self._path)
        self._document, self._stat = document, (st.st_ino, st.st_mtime_ns, st.st_size)


class KVFloorMixin(FloorMixin):
    async def _write_unsafely(self, changes: core.Changes) -> None:
        # one transaction each, whatever the store's limits: a lone route fits
        to_set, to_delete = core.kv_keys(changes, self.kv_layout)
        if to_set:
            await self.kv_store.set(to_set)
        if to_delete:
            await self.kv_store.delete(to_delete)


class TraefikEtcdFloor(KVFloorMixin, TraefikEtcdProxy):
    pass


class TraefikRedisFloor(KVFloorMixin, TraefikRedisProxy):
    pass
