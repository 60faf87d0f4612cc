"""Each route's last activity, for JupyterHub's idle culling, read from Traefik's metrics.

:class:`ActivityTracker` reads the request counters now and then; which
routes were active between two readings is decided by
:mod:`traefik_proxy.core.activity`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime

import httpx

from . import core


class ActivityTracker:
    """``last_activity``: route name -> ISO time of the reading that saw it active.

    It outlives stop and start of the proxy, so a route keeps its stamp
    across a restart of traefik (whose counters then start again at zero).
    """

    def __init__(
        self,
        read_metrics: Callable[[], Awaitable[str]],
        provider: str,
        interval: float,
        log: logging.Logger,
    ):
        self.last_activity: dict[str, str] = {}
        self._read_metrics = read_metrics
        self._provider = provider
        self._interval = interval
        self._log = log
        self._counts: dict[str, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read the counters every ``interval`` seconds in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await self.read()
            await asyncio.sleep(self._interval)

    async def read(self) -> None:
        """Stamp the routes whose request counters grew since the last reading."""
        try:
            text = await self._read_metrics()
        except httpx.HTTPError as e:
            self._log.warning("Could not read Traefik's metrics for route activity: %r", e)
            return
        counts = core.service_request_counts(text, self._provider)
        now = core.iso_utc(datetime.now(UTC))
        for name in core.active_since(self._counts, counts):
            self.last_activity[name] = now
        self._counts = counts

    def keep_only(self, names: Container[str]) -> None:
        """Forget the stamps of routes that no longer exist."""
        self.last_activity = {n: t for n, t in self.last_activity.items() if n in names}

    async def close(self) -> None:
        """Stop the background reading, and wait until it has stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()  # this coroutine's: never None here
                if current is not None and current.cancelling():
                    raise  # close() itself was cancelled, not just the reading
            except Exception:
                self._log.exception("Reading route activity had failed")
