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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import KVStore, url_label, url_secrets

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


class RedisStore(KVStore):
    """Redis at a ``redis://`` or ``rediss://`` URL (the database in its path).

    ``retries``: immediate reconnecting retries of a command by redis-py;
    ``call_timeout``: its socket timeout, so a Redis that accepts connections
    but does not answer hangs no call.
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
    ):
        super().__init__(
            label=url_label("redis", url), separator=separator, secrets=url_secrets(url, password)
        )
        self.url = url
        self.index_key = index_key
        self._username, self._password = username, password
        self._client_kwargs = dict(client_kwargs or {})
        self._retries = retries
        self._call_timeout = call_timeout
        self._client = None
        self._scripts: dict[str, Any] = {}

    @property
    def client(self):
        """The ``redis.asyncio`` client, made on first use (inside the running loop)."""
        if self._client is None:
            from redis.asyncio import from_url

            self._client = from_url(self.url, **self._connection_kwargs())
            self._scripts = {
                name: self._client.register_script(source)
                for name, source in (("set", _SET), ("delete", _DELETE), ("get_tree", _GET_TREE))
            }
        return self._client

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
        return bool(await self._script("set")(keys=[self.index_key], args=args))

    async def delete(self, keys: list[str]) -> None:
        await self._script("delete")(keys=[self.index_key], args=[self.separator, *keys])

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
        from redis.exceptions import AuthenticationError, AuthorizationError
        from redis.exceptions import ConnectionError, TimeoutError

        if isinstance(error, (AuthenticationError, AuthorizationError)):
            return False  # Redis answered: no
        return isinstance(error, (ConnectionError, TimeoutError, OSError))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
