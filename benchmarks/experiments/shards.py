"""Prototype, for measurement only: user routes in K shard Traefiks behind a front Traefik.

Not a proxy to deploy (no restart of a dead shard beyond each shard's own
supervisor, no relayout when K changes, no should_start = False): it exists
so that ``benchmarks.churn`` can measure the design of issue 22 before it is
built. ``python -m benchmarks.churn --systems ours-file,ours-file+shards16``.

- Each shard is a whole :class:`TraefikFileProviderProxy` with its own
  traefik (public entrypoint and API on loopback ports), its own file, and
  the route tree inside. Its entrypoint trusts the front's X-Forwarded-*.
- The front is one more such proxy. It holds the routes without a user
  segment (the Hub's ``/``), and, for each leaf bucket of the route tree
  (``/user/al``), a router sending the bucket to its shard; the levels above
  are the tree's own buckets, with their rest going to the Hub as today.
- A leaf bucket's shard is a stable hash of its prefix, so shards stay
  balanced whatever the alphabet does at the first character.
- A route without a user segment goes to the front and to every shard (their
  buckets' rests fall back to it); a user route to its shard, and its bucket
  to the front once (front buckets are never removed: an empty one sends
  requests to a shard whose rest sends them to the Hub).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traefik_proxy import core
from traefik_proxy.coalesce import Coalescer
from traefik_proxy.core.routing import Bucket, bucket_chain, bucket_fragment, bucket_name
from traefik_proxy.fileprovider import TraefikFileProviderProxy

from ..systems import free_port


def shard_of(bucket: Bucket, shards: int) -> int:
    return zlib.crc32(f"{bucket.host}:{bucket.domain}:{bucket.prefix}".encode()) % shards


class ShardedFileProxy:
    """``lazy_deletes``: a user route's delete waits (at most that many seconds)
    for the next add to its shard and goes out in the same write, so a spawn
    storm's add+delete pairs cost one reload instead of two. ``shard_env``:
    the shard traefiks' environment (e.g. GOGC)."""

    def __init__(self, shards: int, workdir: Path, *, lazy_deletes: float = 0,
                 shard_env: dict[str, str] | None = None, **front_kwargs: Any):
        self.lazy_deletes = lazy_deletes
        self._pending: dict[int, list[str]] = {}
        self._flushers: dict[int, asyncio.Task] = {}
        self.workdir = workdir
        self.front = TraefikFileProviderProxy(
            dynamic_config_file=str(workdir / "front.toml"), **front_kwargs
        )
        self.public_url = self.front.public_url
        common = {k: v for k, v in front_kwargs.items()
                  if k in ("traefik_api_username", "traefik_api_password", "traefik_log_level",
                           "check_route_timeout", "should_start")}
        trusted = {"entryPoints": {"http": {"forwardedHeaders": {"trustedIPs": ["127.0.0.1/32"]}}}}
        self.shards = [
            TraefikFileProviderProxy(
                public_url=f"http://127.0.0.1:{free_port()}",
                traefik_api_url=f"http://127.0.0.1:{free_port()}",
                static_config_file=str(workdir / f"shard{k}.toml"),
                dynamic_config_file=str(workdir / f"shard{k}-rules.toml"),
                traefik_pid_file=str(workdir / f"shard{k}.pid"),
                extra_static_config=trusted,
                traefik_env=dict(shard_env or {}),
                **common,
            )
            for k in range(shards)
        ]
        self._front_buckets: set[Bucket] = set()
        self._front_writes: Coalescer[Bucket] = Coalescer(self._write_front)
        self._hub: core.Route | None = None

    @property
    def log(self):
        return self.front.log

    @log.setter
    def log(self, value) -> None:
        for proxy in (self.front, *self.shards):
            proxy.log = value

    @property
    def traefik_process(self):
        return self.front.traefik_process

    def _service(self, k: int) -> str:
        return f"{self.front.traefik_namespace}-shard-{k}"

    async def start(self) -> None:
        await asyncio.gather(self.front.start(), *(s.start() for s in self.shards))
        services = {self._service(k): {"loadBalancer": {"servers": [{"url": s.public_url}]}}
                    for k, s in enumerate(self.shards)}
        await self.front._apply_dynamic_config(core.Changes(merge={"http": {"services": services}}))

    async def stop(self) -> None:
        for task in self._flushers.values():
            task.cancel()
        await asyncio.gather(self.front.stop(), *(s.stop() for s in self.shards))

    def _chain(self, routespec: str) -> list[Bucket]:
        s = self.front.settings
        return bucket_chain(routespec, s.tree_segment, s.tree_depth)

    async def add_route(self, routespec: str, target: str, data: dict | None = None) -> None:
        routespec = core.normalize_routespec(routespec)
        chain = self._chain(routespec)
        if not chain:
            if (data or {}).get("hub"):
                self._hub = core.make_route(routespec, target, data)
            await asyncio.gather(*(p.add_route(routespec, target, data)
                                   for p in (*self.shards, self.front)))
            return
        leaf = chain[-1]
        if leaf.level != self.front.settings.tree_depth:
            raise ValueError(f"prototype: {routespec!r} is shorter than the tree's depth")
        k = shard_of(leaf, len(self.shards))
        shard = self.shards[k]
        # submitted together, the shard's coalescer writes them in one batch
        deletes = [r for r in self._pending.pop(k, []) if r != routespec]
        await asyncio.gather(shard.add_route(routespec, target, data),
                             *(shard.delete_route(r) for r in deletes))
        if leaf not in self._front_buckets:
            await self._front_writes.submit(leaf)

    async def delete_route(self, routespec: str) -> None:
        routespec = core.normalize_routespec(routespec)
        chain = self._chain(routespec)
        if not chain:
            await asyncio.gather(*(p.delete_route(routespec) for p in (self.front, *self.shards)))
            return
        k = shard_of(chain[-1], len(self.shards))
        if not self.lazy_deletes:
            await self.shards[k].delete_route(routespec)
            return
        self._pending.setdefault(k, []).append(routespec)
        if k not in self._flushers or self._flushers[k].done():
            self._flushers[k] = asyncio.create_task(self._flush_later(k))

    async def _flush_later(self, k: int) -> None:
        await asyncio.sleep(self.lazy_deletes)
        pending = self._pending.pop(k, [])
        await asyncio.gather(*(self.shards[k].delete_route(r) for r in pending))

    async def get_all_routes(self) -> dict[str, Any]:
        routes: dict[str, Any] = {}
        for proxy in (*self.shards, self.front):
            routes.update(await proxy.get_all_routes())
        return routes

    async def _write_front(self, leaves: Sequence[Bucket]) -> list[BaseException | None]:
        """New leaf buckets (and their parents) on the front, then wait until it serves them."""
        settings = self.front.settings
        new = sorted({b for leaf in leaves for b in self._with_parents(leaf)} - self._front_buckets)
        merge: dict[str, Any] = {}
        for bucket in new:
            leaf = bucket.level == settings.tree_depth
            fragment = bucket_fragment(
                bucket, namespace=settings.namespace, entrypoint=settings.entrypoint,
                tls=settings.tls, pin_host=settings.pin_host,
                fallback=None if leaf else self._hub, error_middleware="",
            )
            if leaf:
                name = bucket_name(bucket, settings.namespace)
                fragment["http"]["routers"][name]["service"] = self._service(
                    shard_of(bucket, len(self.shards)))
            merge = core.deep_merge(merge, fragment)
        if merge:
            await self.front._apply_dynamic_config(core.Changes(merge=merge))
            api = self.front._api
            for bucket in new:
                name = bucket_name(bucket, settings.namespace)
                while await api.get_json(f"/api/http/routers/{name}@file", missing_ok=True) is None:
                    await asyncio.sleep(self.front.traefik_poll_interval)
        self._front_buckets.update(new)
        return [None] * len(leaves)

    def _with_parents(self, leaf: Bucket) -> list[Bucket]:
        chain = [leaf]
        while chain[-1].level > 1:
            chain.append(chain[-1].parent)
        return chain
