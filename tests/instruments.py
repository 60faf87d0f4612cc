"""Instruments for tests of a real proxy: a call spy and a fault-injecting transport.

Neither replaces what it wraps: the spy counts the calls of the real method
and passes them through; the transport talks to the real traefik and only
hides one router from its answers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx


class CallSpy:
    """Records the arguments of every call of one object's real method, then calls it."""

    def __init__(self, obj: Any, name: str):
        self.obj, self.name = obj, name
        self.calls: list[tuple[tuple, dict]] = []
        self._real = getattr(obj, name)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return await self._real(*args, **kwargs)

    def __len__(self) -> int:
        return len(self.calls)


@contextlib.contextmanager
def spying(obj: Any, *names: str) -> Iterator[list[CallSpy]]:
    """Spies on ``obj``'s methods ``names`` (on the instance) while the block runs."""
    spies = [CallSpy(obj, name) for name in names]
    for spy in spies:
        setattr(obj, spy.name, spy)
    try:
        yield spies
    finally:
        for spy in spies:
            delattr(obj, spy.name)


class RouterHidingFaultTransport(httpx.AsyncBaseTransport):
    """Fault injection: Traefik's API answered by the real traefik, minus one router.

    Traefik never serving a route (a rule it refuses, a provider error) cannot
    be caused with a route the proxy accepts: validation refuses such routes
    before they reach a batch. Hiding the route's router from every API answer
    (a 404 for it alone, and left out of ``/api/rawdata``) makes the proxy see
    exactly that, so the per-route failure of a batch can be tested.
    """

    def __init__(self, hidden_router: str):
        self.hidden_router = hidden_router  # "name@provider"
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/api/http/routers/{self.hidden_router}":
            return httpx.Response(404, json={"message": "hidden by fault injection"})
        response = await self._real.handle_async_request(request)
        if path != "/api/rawdata" or response.status_code != 200:
            return response
        payload = json.loads(await response.aread())
        (payload.get("routers") or {}).pop(self.hidden_router, None)
        return httpx.Response(200, json=payload)

    async def aclose(self) -> None:
        await self._real.aclose()
