"""TraefikRedisProxy: Traefik's dynamic config and the route records in Redis.

The traitlets and Traefik's Redis provider; the client, with its key index
and Lua scripts, is :class:`traefik_proxy.stores.redis.RedisStore`.

Traefik's Redis provider, unlike its etcd and Consul ones, does not read
atomically: it lists keys with SCAN pages, and a write landing between two
pages can be seen in part (a router with its rule but not yet its parentRefs).
That is why a route counts as served only once Traefik reports every
router field as written (see :func:`traefik_proxy.core.is_live`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from traitlets import Bool, Dict, Integer, List, Unicode, validate

from . import core
from .kv import TKvProxy, check_store_url
from .stores.base import KVStore


class TraefikRedisProxy(TKvProxy):
    """JupyterHub proxy with Traefik's dynamic config in Redis (or Valkey)."""

    provider_name = "redis"

    redis_url = Unicode(
        "redis://127.0.0.1:6379",
        config=True,
        help="""URL of the Redis server: redis://host:port/db or rediss:// for TLS.
        The database number in the path is used by the Hub and by Traefik. With
        traefik_shards = K, shard k uses database db + 1 + k: the server needs
        `databases` >= db + K + 1 in its config (Redis' default is 16).""",
    )
    redis_username = Unicode("", config=True, help="Redis ACL user (with redis_password)")
    redis_password = Unicode("", config=True, help="Redis password (AUTH)")
    redis_client_kwargs = Dict(
        config=True,
        help="""Extra arguments of redis.asyncio.from_url(), e.g. ssl_ca_certs,
        ssl_certfile, ssl_keyfile, socket_timeout.""",
    )
    redis_sentinel_master = Unicode(
        "",
        config=True,
        help="""Name of the master that Redis Sentinel watches (its `sentinel monitor`
        name), e.g. "mymaster". With redis_sentinel_urls, the Hub and Traefik ask
        the sentinels which node is the master, and follow it when they fail
        over; redis_url then gives only the scheme, database and credentials of
        the data nodes. A write is confirmed once a replica has it too.""",
    )
    redis_sentinel_urls = List(
        Unicode(),
        config=True,
        help="""The sentinels, as host:port (port 26379 by default), e.g.
        ["s1:26379", "s2:26379", "s3:26379"]; used with redis_sentinel_master.""",
    )
    redis_retries = Integer(
        5,
        config=True,
        help="""Immediate retries (reconnecting, backoff up to 0.5 s) of a command
        after a connection error. Beyond them, calls are retried until
        check_route_timeout, then fail naming the store.""",
    )

    redis_one_event_per_write = Bool(
        True,
        config=True,
        help="""Traefik re-reads its whole prefix (SCAN and MGET of every key) on
        each keyspace event it gets, and Redis sends one per key written: 4 per
        route, 40,000 for 10,000 routes added at once. With this on, the Hub sets
        the server's notify-keyspace-events to "Kh" (hash commands only: no
        event for the string keys Traefik reads) before each write, and ends
        each write with one HINCRBY of the hash <kv_traefik_prefix>.written,
        which Traefik's listing skips: one event, one re-read per write.
        Keyspace events are server-wide (Traefik itself sets KEA when it
        starts), so other writers of Traefik keys on this Redis must trigger
        that hash too, or turn this off. Where CONFIG is not allowed, set
        notify-keyspace-events Kh in every data node's configuration.""",
    )

    @validate("redis_url")
    def _validate_redis_url(self, proposal):
        url = check_store_url(
            "redis_url",
            proposal.value,
            ("redis", "rediss"),
            "redis://host:port[/db] or rediss://host:port[/db]",
        )
        if url.path.strip("/") and not url.path.strip("/").isdigit():
            raise ValueError(f"redis_url {proposal.value!r}: the path must be a database number")
        return proposal.value

    @validate("redis_sentinel_urls")
    def _validate_sentinel_urls(self, proposal):
        for url in proposal.value:
            core.sentinel_address(url)
        return proposal.value

    def _sentinels(self) -> list[tuple[str, int]]:
        """The sentinels' addresses; both settings or neither, else a ValueError."""
        if bool(self.redis_sentinel_master) != bool(self.redis_sentinel_urls):
            raise ValueError(
                "Redis Sentinel needs both c.TraefikRedisProxy.redis_sentinel_master (the "
                "monitored name, e.g. 'mymaster') and redis_sentinel_urls (e.g. "
                f"['s1:26379', 's2:26379']); got {self.redis_sentinel_master!r} and "
                f"{self.redis_sentinel_urls!r}"
            )
        return [core.sentinel_address(url) for url in self.redis_sentinel_urls]

    def _shard_overrides(self, k: int, ports: tuple[int, int] | None = None) -> dict[str, Any]:
        """Shard k in database db + 1 + k of the same server. Traefik's Redis
        provider reads its keys with a SCAN, which walks the whole database
        whatever its pattern: shards sharing one database would each walk
        every shard's keys on every change."""
        url = urlsplit(self.redis_url)
        db = core.redis_db(self.redis_url) + 1 + k
        own = {"redis_url": url._replace(path=f"/{db}").geturl()}
        return {**super()._shard_overrides(k, ports), **own}

    def _kv_url_trait(self) -> str:
        return "redis_sentinel_urls" if self.redis_sentinel_master else "redis_url"

    def _make_store(self) -> KVStore:
        from .stores.redis import RedisStore

        return RedisStore(
            self.redis_url,
            # outside the Traefik prefix, which Traefik SCANs
            index_key=f"{self.kv_jupyterhub_prefix}.keys",
            username=self.redis_username,
            password=self.redis_password,
            client_kwargs=self.redis_client_kwargs,
            retries=self.redis_retries,
            call_timeout=self.check_route_timeout,
            separator=self.kv_separator,
            sentinel_master=self.redis_sentinel_master,
            sentinels=self._sentinels(),
            # inside Traefik's prefix (its listing's SCAN pattern), not under it
            trigger_key=self.kv_traefik_prefix + ".written" if self.redis_one_event_per_write else "",
            log=self.log,
        )

    async def _setup_traefik_static_config(self) -> None:
        provider = core.redis_provider(
            self.redis_url,
            self.kv_traefik_prefix,
            username=self.redis_username,
            password=self.redis_password,
            client_kwargs=self.redis_client_kwargs,
            sentinel_master=self.redis_sentinel_master,
            sentinel_urls=[core.host_port(*address) for address in self._sentinels()],
        )
        self.static_config = core.deep_merge(self.static_config, {"providers": {"redis": provider}})
        await super()._setup_traefik_static_config()
