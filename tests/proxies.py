"""Making test proxies and asking them which backend serves a path.

``PROXY_KINDS`` names every backend kind a test can run against ("file" and
the key-value kinds of :mod:`tests.kv_support`); :func:`make_proxy` builds an
unstarted proxy of one, on its own ports and files. :func:`served_by` asks a
started proxy which :class:`tests.utils.Backend` answers a path;
:class:`Poller` keeps asking while a test changes routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from traefik_proxy.fileprovider import TraefikFileProviderProxy

from .kv_support import KV_KINDS
from .servers import free_port

# kind -> function(request, directory) -> (proxy class, extra traitlets)
ProxyKind = Callable[[pytest.FixtureRequest, Path], tuple[type, dict[str, Any]]]


def _file_kind(request: pytest.FixtureRequest, directory: Path):
    return TraefikFileProviderProxy, {"dynamic_config_file": str(directory / "rules.toml")}


PROXY_KINDS: dict[str, ProxyKind] = {"file": _file_kind, **KV_KINDS}


def proxy_kwargs(directory: Path, **overrides: Any) -> dict[str, Any]:
    """Traitlets every test proxy gets: its own ports and files in ``directory``."""
    kwargs: dict[str, Any] = {
        "public_url": f"http://127.0.0.1:{free_port()}",
        "traefik_api_url": f"http://localhost:{free_port()}",
        "static_config_file": str(directory / "traefik.toml"),
        "traefik_pid_file": str(directory / "traefik.pid"),
        "check_route_timeout": 20,
        "traefik_log_level": "ERROR",
    }
    kwargs.update(overrides)
    return kwargs


def make_proxy(kind: str, request: pytest.FixtureRequest, directory: Path, **overrides: Any):
    """An unstarted proxy of a backend kind, configured to run in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cls, kind_kwargs = PROXY_KINDS[kind](request, directory)
    proxy = cls(**proxy_kwargs(directory, **{**kind_kwargs, **overrides}))
    proxy.log = logging.getLogger(f"traefik_proxy.test.{kind}")
    return proxy


async def fetch(proxy, path: str, host: str | None = None, **headers) -> httpx.Response:
    """A request through Traefik's public entrypoint, path sent as given."""
    if host:
        headers["Host"] = host
    async with httpx.AsyncClient(base_url=proxy.public_url, verify=False) as client:
        return await client.get(httpx.URL(proxy.public_url + path), headers=headers)


async def served_by(proxy, path: str, host: str | None = None) -> str | None:
    """The name of the backend that answers ``path``, or None if none does (no 200)."""
    response = await fetch(proxy, path, host)
    if response.status_code != 200:
        return None
    return response.json()["backend"]


async def serves(proxy, path: str, backend: str | None) -> bool:
    """Whether ``backend`` answers ``path`` now (None: no backend does); for
    :func:`tests.utils.wait_for`."""
    return await served_by(proxy, path) == backend


class Poller:
    """While its block runs, requests ``paths`` through ``proxy`` one after
    another, again and again; ``misses`` holds every (path, answer) that was
    not ``backend``, ``sent`` how many requests went out. A path given as a
    ``(host, path)`` pair is requested with that Host header."""

    def __init__(self, proxy, paths: list[str] | list[tuple[str, str]], backend: str):
        self.proxy, self.backend = proxy, backend
        self.targets = [(None, p) if isinstance(p, str) else p for p in paths]
        self.sent = 0
        self.misses: list[tuple[str, str | None]] = []
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while not self._done.is_set():
            for host, path in self.targets:
                answer = await served_by(self.proxy, path, host)
                self.sent += 1
                if answer != self.backend:
                    self.misses.append((f"{host or ''}{path}", answer))

    async def __aenter__(self) -> Poller:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._done.set()
        assert self._task is not None
        await self._task
