"""A stand-in for Consul's KV HTTP API, for tests where no consul binary exists.

This is NOT Consul. It is an in-memory, single-node imitation of the part of
Consul's HTTP API that TraefikConsulProxy and Traefik's consul provider use:

- ``GET /v1/kv/<key>`` with ``recurse``, ``keys`` (+ ``separator``), ``raw``,
  and blocking queries (``index`` + ``wait``), answering with the
  ``X-Consul-Index``/``X-Consul-KnownLeader``/``X-Consul-LastContact``
  headers the Go client requires; 404 (with an index) for missing keys.
- ``PUT /v1/kv/<key>`` (``cas``, ``flags``) and ``DELETE /v1/kv/<key>``
  (``recurse``, ``cas``).
- ``PUT /v1/txn`` with the KV verbs set, cas, get, get-tree, check-index,
  check-not-exists, delete, delete-tree, delete-cas; all-or-nothing, at most
  64 operations (413 above, like Consul), 409 with ``Errors`` on a failed check.
- An optional ACL token (``X-Consul-Token``, ``Authorization: Bearer`` or
  ``?token=``); with a token set, anything else gets 403 (a request without
  one acts with ``default_token``, Consul's ``acl.tokens.default``).
- Optional HTTP basic auth instead (``basic_auth=(user, password)``): what a
  Consul behind a reverse proxy that checks it looks like; anything else
  gets 401.

Indexes follow Consul's rules closely enough for blocking queries: every
write gets the next raft-like index; the index of a read is the highest
modify index of the keys it covers, including deleted ones (tombstones are
kept forever here), so a watcher of one prefix is not woken by writes
elsewhere, and indexes never go backwards.

It runs an aiohttp server on a real TCP port in its own thread and event
loop, so Traefik (a separate process) can watch it like a real Consul.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from dataclasses import dataclass

from aiohttp import web

MAX_TXN_OPS = 64


@dataclass
class Entry:
    value: bytes
    flags: int
    create_index: int
    modify_index: int

    def as_json(self, key: str, with_value: bool = True) -> dict:
        return {
            "LockIndex": 0,
            "Key": key,
            "Flags": self.flags,
            "Value": (base64.b64encode(self.value).decode() if self.value else None) if with_value else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


class TxnError(Exception):
    pass


def parse_wait(text: str | None, default: float = 300.0) -> float:
    """Consul's ``wait`` durations (``15000ms``, ``10s``, ``5m``), capped at 10 minutes."""
    if not text:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        raise ValueError(f"bad wait {text!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return min(seconds, 600.0)


class KVState:
    """The store: entries, tombstones and the index; used only from the server's loop."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.tombstones: dict[str, int] = {}
        self.index = 1
        self.changed = asyncio.Event()

    def _covered(self, key: str, recurse: bool):
        if recurse:
            return lambda k: k.startswith(key)
        return lambda k: k == key

    def read_index(self, key: str, recurse: bool) -> int:
        covers = self._covered(key, recurse)
        best = 1
        for k, e in self.entries.items():
            if covers(k) and e.modify_index > best:
                best = e.modify_index
        for k, i in self.tombstones.items():
            if covers(k) and i > best:
                best = i
        return best

    def matching(self, key: str, recurse: bool) -> list[tuple[str, Entry]]:
        if recurse:
            return sorted((k, e) for k, e in self.entries.items() if k.startswith(key))
        entry = self.entries.get(key)
        return [(key, entry)] if entry else []

    # writes, applied to a (copied) state by a transaction

    def _set(self, entries, tombstones, key, value, flags, index):
        old = entries.get(key)
        entries[key] = Entry(value, flags, old.create_index if old else index, index)
        tombstones.pop(key, None)
        return entries[key]

    def _delete(self, entries, tombstones, key, recurse, index):
        keys = [k for k in entries if k.startswith(key)] if recurse else [key]
        for k in keys:
            if entries.pop(k, None) is not None:
                tombstones[k] = index

    def transact(self, ops: list[dict]) -> list[dict]:
        """Apply KV operations all-or-nothing; raise TxnError(op index, message)."""
        entries = dict(self.entries)
        tombstones = dict(self.tombstones)
        index = self.index + 1
        results: list[dict] = []
        wrote = False
        for i, op in enumerate(ops):
            kv = op.get("KV")
            if kv is None:
                raise TxnError(i, "only KV operations are supported by this stand-in")
            verb, key = kv.get("Verb"), kv.get("Key", "")
            value = base64.b64decode(kv["Value"]) if kv.get("Value") else b""
            flags = int(kv.get("Flags") or 0)
            cas_index = int(kv.get("Index") or 0)
            current = entries.get(key)
            if verb == "set":
                results.append(
                    {"KV": self._set(entries, tombstones, key, value, flags, index).as_json(key, False)}
                )
                wrote = True
            elif verb == "cas":
                if (cas_index == 0 and current is not None) or (
                    cas_index != 0 and (current is None or current.modify_index != cas_index)
                ):
                    raise TxnError(i, f'failed to set key "{key}", index is stale')
                results.append(
                    {"KV": self._set(entries, tombstones, key, value, flags, index).as_json(key, False)}
                )
                wrote = True
            elif verb == "get":
                if current is None:
                    raise TxnError(i, f'key "{key}" doesn\'t exist')
                results.append({"KV": current.as_json(key)})
            elif verb == "get-tree":
                results += [{"KV": e.as_json(k)} for k, e in sorted(entries.items()) if k.startswith(key)]
            elif verb == "check-index":
                if current is None or current.modify_index != cas_index:
                    raise TxnError(i, f'current modify index for key "{key}" does not match')
            elif verb == "check-not-exists":
                if current is not None:
                    raise TxnError(i, f'key "{key}" exists')
            elif verb == "delete":
                self._delete(entries, tombstones, key, False, index)
                wrote = True
            elif verb == "delete-tree":
                self._delete(entries, tombstones, key, True, index)
                wrote = True
            elif verb == "delete-cas":
                if current is None or current.modify_index != cas_index:
                    raise TxnError(i, f'failed to delete key "{key}", index is stale')
                self._delete(entries, tombstones, key, False, index)
                wrote = True
            else:
                raise TxnError(i, f"unknown KV verb {verb!r}")
        if wrote:
            self.entries, self.tombstones, self.index = entries, tombstones, index
            self.changed.set()
            self.changed = asyncio.Event()
        return results


class ConsulStandin:
    """Consul's KV HTTP API on ``127.0.0.1:port``, in a background thread."""

    def __init__(
        self,
        port: int,
        token: str = "",
        basic_auth: tuple[str, str] | None = None,
        default_token: str = "",
    ) -> None:
        self.port = port
        self.token = token
        self.basic_auth = basic_auth
        #: Consul's acl.tokens.default: what a request that sends no token acts with
        self.default_token = default_token
        self.url = f"http://127.0.0.1:{port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.state: KVState | None = None

    # ------------------------------------------------------------ HTTP

    def _check_token(self, request: web.Request) -> None:
        if self.basic_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                raise web.HTTPUnauthorized(text="basic auth required")
            return
        if not self.token:
            return
        given = (
            request.headers.get("X-Consul-Token")
            or request.query.get("token")
            or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            or self.default_token
        )
        if given != self.token:
            raise web.HTTPForbidden(text="Permission denied")

    def _headers(self, index: int) -> dict[str, str]:
        return {
            "X-Consul-Index": str(index),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
        }

    @staticmethod
    def _key(request: web.Request) -> str:
        return request.path[len("/v1/kv/") :]

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self._check_token(request)
        state = self.state
        assert state is not None
        key = self._key(request)
        query = request.query
        recurse = "recurse" in query or "keys" in query
        if "index" in query:
            wanted = int(query["index"] or 0)
            try:
                wait = parse_wait(query.get("wait"))
            except ValueError as e:
                raise web.HTTPBadRequest(text=str(e)) from None
            deadline = asyncio.get_running_loop().time() + wait
            while state.read_index(key, recurse) <= wanted:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(state.changed.wait(), remaining)
                except TimeoutError:
                    break
        index = state.read_index(key, recurse)
        headers = self._headers(index)
        found = state.matching(key, recurse)
        if "keys" in query:
            separator = query.get("separator", "")
            keys: list[str] = []
            for k, _ in found:
                if separator:
                    cut = k.find(separator, len(key))
                    if cut >= 0:
                        k = k[: cut + len(separator)]
                if not keys or keys[-1] != k:
                    keys.append(k)
            if not keys:
                return web.Response(status=404, headers=headers)
            return web.json_response(keys, headers=headers)
        if not found:
            return web.Response(status=404, headers=headers)
        if "raw" in query and not recurse:
            return web.Response(body=found[0][1].value, headers=headers)
        return web.json_response([e.as_json(k) for k, e in found], headers=headers)

    async def _put(self, request: web.Request) -> web.Response:
        self._check_token(request)
        key = self._key(request)
        body = await request.read()
        op = {"Key": key, "Value": base64.b64encode(body).decode(), "Flags": request.query.get("flags", 0)}
        if "cas" in request.query:
            op.update(Verb="cas", Index=request.query["cas"])
        else:
            op["Verb"] = "set"
        return await self._single(op)

    async def _delete(self, request: web.Request) -> web.Response:
        self._check_token(request)
        key = self._key(request)
        if "cas" in request.query:
            op = {"Verb": "delete-cas", "Key": key, "Index": request.query["cas"]}
        else:
            op = {"Verb": "delete-tree" if "recurse" in request.query else "delete", "Key": key}
        return await self._single(op)

    async def _single(self, op: dict) -> web.Response:
        assert self.state is not None
        try:
            self.state.transact([{"KV": op}])
        except TxnError:
            return web.json_response(False)
        return web.json_response(True)

    async def _txn(self, request: web.Request) -> web.Response:
        self._check_token(request)
        assert self.state is not None
        try:
            ops = json.loads(await request.read())
        except json.JSONDecodeError as e:
            raise web.HTTPBadRequest(text=f"Failed to parse body: {e}") from None
        if not isinstance(ops, list):
            raise web.HTTPBadRequest(text="Failed to parse body: expected a list of operations")
        if len(ops) > MAX_TXN_OPS:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_TXN_OPS,
                actual_size=len(ops),
                text=f"Transaction contains too many operations ({len(ops)} > {MAX_TXN_OPS})",
            )
        try:
            results = self.state.transact(ops)
        except TxnError as e:
            op_index, what = e.args
            return web.json_response(
                {"Results": None, "Errors": [{"OpIndex": op_index, "What": what}]}, status=409
            )
        return web.json_response(
            {"Results": results or None, "Errors": None}, headers=self._headers(self.state.index)
        )

    async def _leader(self, request: web.Request) -> web.Response:
        return web.json_response("127.0.0.1:8300")

    # ------------------------------------------------------------ lifecycle

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=512 * 1024)
        app.router.add_get("/v1/kv/{key:.*}", self._get)
        app.router.add_put("/v1/kv/{key:.*}", self._put)
        app.router.add_delete("/v1/kv/{key:.*}", self._delete)
        app.router.add_put("/v1/txn", self._txn)
        app.router.add_get("/v1/status/leader", self._leader)
        return app

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def serve():
            self.state = KVState()
            self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        try:
            loop.run_until_complete(serve())
        except BaseException as e:  # reported to start()
            self._error = e
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.close()

    def start(self) -> ConsulStandin:
        self._thread = threading.Thread(target=self._run, name=f"consul-standin-{self.port}", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise RuntimeError(f"Consul stand-in failed to start on port {self.port}") from self._error
        return self

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # blocking queries still waiting (Traefik's watch) end here
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                done.result(10)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
