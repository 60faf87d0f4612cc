"""TraefikRedisProxy: Traefik's dynamic config and the route records in Redis.

Redis has no range reads or range deletes over its keyspace: SCAN walks the
whole keyspace whatever its MATCH pattern. So beside the string keys Traefik
reads, this proxy keeps an index of every key it wrote, one sorted set (all
scores 0, ordered by key) stored at ``{kv_jupyterhub_prefix}.keys`` - outside
the Traefik prefix, which Traefik itself SCANs. A subtree is then a
lexicographic range of the index: reading or deleting it is
O(log N + subtree size). Each primitive is one Lua script, which Redis runs
atomically, so keys and index never disagree.

Traefik's Redis provider, unlike its etcd and Consul ones, does not read
atomically: it lists keys with SCAN pages, and a write landing between two
pages can be seen in part (a router with its rule but not yet its priority).
That is why a route counts as served only once Traefik reports every
router field as written (see :func:`traefik_proxy.core.is_live`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from traitlets import Dict, Integer, Unicode, validate

from . import core
from .kv import TKvProxy, check_store_url

# KEYS[1]: the index. ARGV: key1, value1, key2, value2, ...
# Returns 0 if the index did not exist: the store lost every key this Hub
# wrote (a restart without persistence, FLUSHALL), or this is the first write.
_SET = """
local existed = redis.call('EXISTS', KEYS[1])
for i = 1, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
end
return existed
"""

# KEYS[1]: the index. ARGV[1]: the separator; ARGV[2..]: keys, a key ending
# in the separator standing for its whole subtree.
_DELETE = """
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
return deleted
"""

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


class TraefikRedisProxy(TKvProxy):
    """JupyterHub proxy with Traefik's dynamic config in Redis (or Valkey)."""

    provider_name = "redis"

    redis_url = Unicode(
        "redis://127.0.0.1:6379",
        config=True,
        help="""URL of the Redis server: redis://host:port/db or rediss:// for TLS.
        The database number in the path is used by the Hub and by Traefik.""",
    )
    redis_username = Unicode("", config=True, help="Redis ACL user (with redis_password)")
    redis_password = Unicode("", config=True, help="Redis password (AUTH)")
    redis_client_kwargs = Dict(
        config=True,
        help="""Extra arguments of redis.asyncio.from_url(), e.g. ssl_ca_certs,
        ssl_certfile, ssl_keyfile, socket_timeout.""",
    )
    redis_retries = Integer(
        5,
        config=True,
        help="""Immediate retries (reconnecting, backoff up to 0.5 s) of a command
        after a connection error. Beyond them, calls are retried until
        check_route_timeout, then fail naming the store.""",
    )

    @validate("redis_url")
    def _validate_redis_url(self, proposal):
        url = check_store_url(
            "redis_url", proposal.value, ("redis", "rediss"),
            "redis://host:port[/db] or rediss://host:port[/db]",
        )
        if url.path.strip("/") and not url.path.strip("/").isdigit():
            raise ValueError(f"redis_url {proposal.value!r}: the path must be a database number")
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._redis = None
        self._scripts: dict[str, Any] = {}

    @property
    def _index_key(self) -> str:
        return f"{self.kv_jupyterhub_prefix}.keys"

    def _db(self) -> int:
        return int(urlsplit(self.redis_url).path.strip("/") or 0)

    @property
    def redis(self):
        if self._redis is None:
            from redis.asyncio import from_url
            from redis.asyncio.retry import Retry  # the sync Retry is ignored by asyncio clients
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError, TimeoutError

            kwargs: dict[str, Any] = {
                "decode_responses": True,
                # a pooled connection is dead after a Redis restart: reconnect
                # at once; longer outages are retried by TKvProxy._kv_call
                "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), self.redis_retries),
                "retry_on_error": [ConnectionError, TimeoutError],
                # without these, a Redis that accepts connections but does
                # not answer (stopped, or packets dropped) hangs a call
                "socket_connect_timeout": min(5.0, self.check_route_timeout),
                "socket_timeout": self.check_route_timeout,
            }
            if self.redis_username:
                kwargs["username"] = self.redis_username
            if self.redis_password:
                kwargs["password"] = self.redis_password
            kwargs.update(self.redis_client_kwargs)
            self._redis = from_url(self.redis_url, **kwargs)
            self._scripts = {
                name: self._redis.register_script(source)
                for name, source in (("set", _SET), ("delete", _DELETE), ("get_tree", _GET_TREE))
            }
        return self._redis

    async def _close(self) -> None:
        await super()._close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _kv_unavailable(self, error: BaseException) -> bool:
        from redis.exceptions import AuthenticationError, AuthorizationError
        from redis.exceptions import ConnectionError, TimeoutError

        if isinstance(error, (AuthenticationError, AuthorizationError)):
            return False  # Redis answered: no
        return isinstance(error, (ConnectionError, TimeoutError, OSError))

    # ------------------------------------------------------------ static config

    def _setup_traefik_static_config(self, config: dict[str, Any]) -> dict[str, Any]:
        url = urlsplit(self.redis_url)
        host, port = url.hostname or "127.0.0.1", url.port or 6379
        provider: dict[str, Any] = {
            "endpoints": [core.host_port(host, port)],
            "rootKey": self.kv_traefik_prefix,
        }
        username = self.redis_username or unquote(url.username or "")
        password = self.redis_password or unquote(url.password or "")
        if username:
            provider["username"] = username
        if password:
            provider["password"] = password
        if self._db():
            provider["db"] = self._db()
        if url.scheme == "rediss":
            kwargs = self.redis_client_kwargs
            tls: dict[str, Any] = {}
            for ours, theirs in (
                ("ssl_ca_certs", "ca"),
                ("ssl_certfile", "cert"),
                ("ssl_keyfile", "key"),
            ):
                if kwargs.get(ours):
                    tls[theirs] = kwargs[ours]
            provider["tls"] = tls
        return core.deep_merge(config, {"providers": {"redis": provider}})

    # ------------------------------------------------------------ store primitives

    def _script(self, name: str):
        self.redis  # noqa: B018  (creates the client and registers the scripts)
        return self._scripts[name]

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        args: list[str] = []
        for key, value in to_set.items():
            args += (key, value)
        existed = await self._script("set")(keys=[self._index_key], args=args)
        if not existed and self._kv_setup_keys:
            self.log.warning(
                "%s lost every key this Hub wrote (restarted without persistence?); "
                "writing the Hub's Traefik config again. Routes come back with the Hub's "
                "next route check (JupyterHub's check_routes).",
                self._kv_store_label(),
            )
            self._kv_setup_lost = True

    async def _kv_atomic_delete(self, *keys: str) -> None:
        await self._script("delete")(keys=[self._index_key], args=[self.kv_separator, *keys])

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        flat = await self._script("get_tree")(keys=[self._index_key], args=[prefix])
        return dict(zip(flat[::2], flat[1::2]))
