"""Redis (or Valkey) as a :class:`~traefik_proxy.stores.base.KVStore`.

Redis has no range reads or range deletes over its keyspace: SCAN walks the
whole keyspace whatever its MATCH pattern. So beside the string keys Traefik
reads, this store keeps an index of every key it wrote, one sorted set (all
scores 0, ordered by key) at ``index_key`` - outside the Traefik prefix,
which Traefik itself SCANs. A subtree is then a lexicographic range of the
index: reading or deleting it is O(log N + subtree size). Each primitive is
one Lua script, which Redis runs atomically, so keys and index never
disagree, and the set script reports whether the index existed: whether
Redis still had what this Hub wrote.

High availability: the master can be found through Redis Sentinel, and a
write to a master with replicas is followed by ``WAIT`` on the same
connection, so it counts as done only once a replica has it.

One keyspace event per write: Traefik re-reads its whole prefix (SCAN and
MGET) on each keyspace event it sees, and Redis sends one per key written.
With ``trigger_key``, each write sets ``notify-keyspace-events`` to
``keyspace_events`` ("Kh": hash commands only, so none for the string keys
Traefik reads) and ends with one ``HINCRBY`` of that hash under Traefik's
prefix: one event, one re-read. Traefik's MGET reads the hash as nil and
skips it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.config import host_port
from .base import KVStore, store_call_deadline, url_label, url_secrets

if TYPE_CHECKING:  # redis is imported when first used (it is an optional dependency)
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

# How many replicas the node has: the writes scripts return it, so that the
# store knows whether to WAIT for one (see RedisStore._run_write).
_REPLICAS = """
local replicas = tonumber(string.match(redis.call('INFO', 'replication'), 'connected_slaves:(%d+)'))
"""

# The write's one keyspace event for Traefik, when KEYS[2] names a trigger
# hash (see the module doc); after every key of the write.
_TRIGGER = """
if KEYS[2] then
  redis.call('HINCRBY', KEYS[2], 'writes', 1)
end
"""

# KEYS[1]: the index. ARGV: key1, value1, key2, value2, ...
# Returns {existed, replicas}; existed is 0 if the index did not exist: the
# store lost every key this Hub wrote (a restart without persistence,
# FLUSHALL), or this is the first write.
_SET = (
    """
local existed = redis.call('EXISTS', KEYS[1])
for i = 1, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
end
"""
    + _TRIGGER
    + _REPLICAS
    + """
return {existed, replicas}
"""
)

# KEYS[1]: the index. ARGV[1]: the separator; ARGV[2..]: keys, a key ending
# in the separator standing for its whole subtree.
_DELETE = (
    """
local sep = ARGV[1]
local deleted = 0
for i = 2, #ARGV do
  local key = ARGV[i]
  if string.sub(key, -#sep) == sep then
    local low, high = '[' .. key, '(' .. key .. '\\255'
    local members = redis.call('ZRANGEBYLEX', KEYS[1], low, high)
    for j = 1, #members, 1000 do
      deleted = deleted + redis.call('DEL', unpack(members, j, math.min(j + 999, #members)))
    end
    redis.call('ZREMRANGEBYLEX', KEYS[1], low, high)
  else
    deleted = deleted + redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], key)
  end
end
"""
    + _TRIGGER
    + _REPLICAS
    + """
return {deleted, replicas}
"""
)

# KEYS[1]: the index. ARGV[1]: the prefix. Returns key1, value1, key2, ...
_GET_TREE = """
local members = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. ARGV[1], '(' .. ARGV[1] .. '\\255')
local result = {}
for j = 1, #members, 1000 do
  local chunk = {unpack(members, j, math.min(j + 999, #members))}
  local values = redis.call('MGET', unpack(chunk))
  for i = 1, #chunk do
    if values[i] then
      result[#result + 1] = chunk[i]
      result[#result + 1] = values[i]
    end
  end
end
return result
"""


class RedisStore(KVStore):
    """Redis at a ``redis://`` or ``rediss://`` URL (the database in its path).

    ``retries``: immediate reconnecting retries of a command by redis-py;
    ``call_timeout``: its socket timeout, so a Redis that accepts connections
    but does not answer hangs no call.

    With ``sentinel_master``, the master is whichever node the ``sentinels``
    (``(host, port)`` pairs) name; ``url`` then gives only the scheme,
    database and credentials of the data nodes. Whenever the master has
    replicas, a write returns only once one of them has it too (``WAIT``, up
    to ``replica_ack_timeout`` seconds), so a failover right after it loses
    nothing.
    """

    def __init__(
        self,
        url: str,
        *,
        index_key: str,
        username: str = "",
        password: str = "",
        client_kwargs: Mapping[str, Any] | None = None,
        retries: int = 5,
        call_timeout: float = 30,
        separator: str = "/",
        sentinel_master: str = "",
        sentinels: Sequence[tuple[str, int]] = (),
        replica_ack_timeout: float = 1.0,
        trigger_key: str = "",
        keyspace_events: str = "Kh",
        log: logging.Logger | None = None,
    ):
        label = url_label("redis", url)
        if sentinel_master:
            where = ",".join(host_port(host, port) for host, port in sentinels)
            label = f"redis master {sentinel_master!r} of the sentinels at {where}"
        super().__init__(label=label, separator=separator, secrets=url_secrets(url, password))
        self.url = url
        self.index_key = index_key
        self.log = log or logging.getLogger(__name__)
        self._username, self._password = username, password
        self._client_kwargs = dict(client_kwargs or {})
        self._retries = retries
        self._call_timeout = call_timeout
        self._sentinel_master = sentinel_master
        self._sentinels = list(sentinels)
        self._sentinel: Sentinel | None = None
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}
        #: wait for a replica to acknowledge each write (off only to measure its cost)
        self.wait_for_replica = True
        self._replica_ack_timeout = replica_ack_timeout
        #: replicas the master reported at the last write
        self._replicas = 0
        self.trigger_key = trigger_key
        self.keyspace_events = keyspace_events
        #: the server refused CONFIG SET (warned once; not asked again)
        self._config_refused = False

    @property
    def client(self):
        """The ``redis.asyncio`` client, made on first use (inside the running loop)."""
        if self._client is None:
            if self._sentinel_master:
                self._client = self._master_through_sentinels()
            else:
                from redis.asyncio import from_url

                self._client = from_url(self.url, **self._connection_kwargs())
            self._scripts = {"get_tree": self._client.register_script(_GET_TREE)}
        return self._client

    def _master_through_sentinels(self):
        from redis.asyncio.connection import SSLConnection, parse_url
        from redis.asyncio.sentinel import Sentinel

        kwargs = self._connection_kwargs()
        # the URL's database, credentials and options; its host is the sentinels' to say
        for key, value in parse_url(self.url).items():
            if key == "connection_class":
                kwargs.setdefault("ssl", value is SSLConnection)
            elif key not in ("host", "port"):
                kwargs.setdefault(key, value)
        timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_") and "timeout" in k}
        self._sentinel = Sentinel(self._sentinels, sentinel_kwargs=timeouts)
        return self._sentinel.master_for(self._sentinel_master, **kwargs)

    def _connection_kwargs(self) -> dict[str, Any]:
        from redis.asyncio.retry import Retry  # the sync Retry is ignored by asyncio clients
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError, TimeoutError

        kwargs: dict[str, Any] = {
            "decode_responses": True,
            # a pooled connection is dead after a Redis restart: reconnect
            # at once; longer outages are retried by TKvProxy._kv_call
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), self._retries),
            "retry_on_error": [ConnectionError, TimeoutError],
            # without these, a Redis that accepts connections but does
            # not answer (stopped, or packets dropped) hangs a call
            "socket_connect_timeout": min(5.0, self._call_timeout),
            "socket_timeout": self._call_timeout,
        }
        if self._username:
            kwargs["username"] = self._username
        if self._password:
            kwargs["password"] = self._password
        kwargs.update(self._client_kwargs)
        return kwargs

    def _script(self, name: str):
        self.client  # noqa: B018  (creates the client and registers the scripts)
        return self._scripts[name]

    async def set(self, values: Mapping[str, str]) -> bool:
        args: list[str] = []
        for key, value in values.items():
            args += (key, value)
        return bool(await self._write(_SET, args))

    async def delete(self, keys: list[str]) -> None:
        await self._write(_DELETE, [self.separator, *keys])

    async def _write(self, script: str, args: list[str]) -> int:
        """Run a write script; with replicas, until one of them has the write.

        Returns the script's first result. Whether the master has replicas
        is known from the previous write (each script reports it); when one
        appeared since, the write runs again (the same keys and values) with
        the wait.
        """
        waiting = self.wait_for_replica and self._replicas > 0
        try:
            result, acks = await self._run_write(script, args, waiting)
        except Exception:
            # the master may have changed: a new one may have no replica yet,
            # and WAIT would then take its whole timeout
            self._replicas = 0
            raise
        self._replicas = int(result[1])
        if self.wait_for_replica and self._replicas and not waiting:
            waiting = True
            _, acks = await self._run_write(script, args, waiting)
        if waiting and self._replicas and acks < 1:
            self.log.warning(
                "No replica of %s acknowledged a write within %.1fs: a failover before "
                "it replicates would lose it",
                self.label,
                self._ack_timeout(),
            )
        return int(result[0])

    async def _run_write(self, script: str, args: list[str], wait: bool) -> tuple[list, int]:
        """(the script's result, replicas acknowledging it): one round trip.

        WAIT counts the writes of its own connection: a pipeline sends both
        commands on one, and redis-py retries a pipeline as a whole.
        """
        pipe = self.client.pipeline(transaction=False)
        configure = bool(self.trigger_key) and not self._config_refused
        if configure:
            # again at every write: Traefik sets KEA whenever it starts, and a
            # promoted replica has its own configuration
            pipe.execute_command("CONFIG", "SET", "notify-keyspace-events", self.keyspace_events)
        keys = [self.index_key, self.trigger_key] if self.trigger_key else [self.index_key]
        pipe.execute_command("EVAL", script, len(keys), *keys, *args)
        # WAIT 0 0 answers at once; WAIT 1 0 would wait for ever
        timeout_ms = max(1, int(self._ack_timeout() * 1000)) if wait else 0
        pipe.execute_command("WAIT", 1 if wait else 0, timeout_ms)
        replies = await pipe.execute(raise_on_error=False)
        if configure:
            self._config_answer(replies.pop(0))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        result, acks = replies
        return result, int(acks)

    def _config_answer(self, reply: Any) -> None:
        if not isinstance(reply, Exception):
            return
        self._config_refused = True
        self.log.warning(
            "%s refused CONFIG SET notify-keyspace-events %s (%s): Traefik re-reads its "
            "whole prefix once per key written instead of once per write. Allow CONFIG to "
            "the Hub's Redis user, or set notify-keyspace-events %s in every data node's "
            "configuration (and keep Traefik's user from CONFIG, with which it sets KEA at "
            "start), or set c.TraefikRedisProxy.redis_one_event_per_write = False",
            self.label,
            self.keyspace_events,
            reply,
            self.keyspace_events,
        )

    def _ack_timeout(self) -> float:
        """How long to wait for a replica: replica_ack_timeout, within the call's deadline."""
        deadline = store_call_deadline.get()
        if deadline is None:
            return self._replica_ack_timeout
        return max(min(self._replica_ack_timeout, deadline - time.monotonic() - 0.1), 0.001)

    async def get_tree(self, prefix: str) -> dict[str, str]:
        flat = await self._script("get_tree")(keys=[self.index_key], args=[prefix])
        return dict(zip(flat[::2], flat[1::2]))

    async def get_tree_of_anyone(self, prefix: str) -> dict[str, str]:
        # others' keys are not in our index: SCAN the keyspace (once, at start)
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        keys = [key async for key in self.client.scan_iter(match=pattern, count=1000)]
        values = await self.client.mget(keys) if keys else []
        return {k: v for k, v in zip(keys, values) if v is not None}

    def is_unavailable(self, error: BaseException) -> bool:
        from redis.exceptions import AuthenticationError, AuthorizationError, ConnectionError, TimeoutError

        if isinstance(error, (AuthenticationError, AuthorizationError)):
            return False  # Redis answered: no
        return isinstance(error, (ConnectionError, TimeoutError, OSError))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        if self._sentinel is not None:
            sentinel, self._sentinel = self._sentinel, None
            await sentinel.aclose()
