"""Helpers shared by the tests: a real backend server, polling, JupyterHub objects.

``free_port`` is :func:`tests.servers.free_port`, importable from here too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

from aiohttp import web
from cryptography import x509

from .servers import free_port


class Backend:
    """A real HTTP server standing in for a notebook server or the Hub.

    Every request is answered with JSON naming this backend and echoing what
    it received (raw path, Host, Origin), so a test can tell which backend
    Traefik routed to. ``/ws`` paths (under any prefix) are websocket echoes.
    """

    def __init__(self, name: str):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/ws") and request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str(f"{self.name}:{msg.data}")
            return ws
        body = {
            "backend": self.name,
            "path": request.raw_path,
            "host": request.headers.get("Host"),
            "origin": request.headers.get("Origin"),
            "x_forwarded_for": request.headers.get("X-Forwarded-For"),
            "x_forwarded_proto": request.headers.get("X-Forwarded-Proto"),
            "x_forwarded_host": request.headers.get("X-Forwarded-Host"),
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def start(self) -> Backend:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Poll an async condition until it is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def hub_objects(prefix: str, backends) -> tuple[dict, SimpleNamespace, object]:
    """JupyterHub users with running servers on backends a and b, and the Hub."""
    from jupyterhub import orm
    from jupyterhub.objects import Hub, Server
    from jupyterhub.user import User

    db = orm.new_session_factory("sqlite:///:memory:")()
    users = {}
    for name, backend in (("alice", backends["a"]), ("bob", backends["b"])):
        orm_user = orm.User(name=name)
        db.add(orm_user)
        db.commit()
        user = User(orm_user, {"base_url": prefix})
        orm_server = orm.Server(ip="127.0.0.1", port=backend.port, base_url=user.base_url)
        db.add(orm_server)
        db.commit()  # the orm fills in its defaults (proto, cookie name) on commit
        user.spawners[""].server = Server(orm_server=orm_server)
        db.commit()
        users[orm_user.id] = user
    hub = Hub(ip="127.0.0.1", port=backends["hub"].port, base_url=f"{prefix}hub/")
    hub.routespec = f"{prefix}hub/"
    return users, SimpleNamespace(hub=hub), hub


def served_certificate(port: int, sni: str) -> x509.Certificate:
    """The certificate a TLS port on 127.0.0.1 presents for ``sni`` (not verified)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
