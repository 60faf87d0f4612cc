"""Run queued route changes as batches: one store write and one wait per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: Runs a batch; returns one exception (or None) per item, in order.
BatchRunner = Callable[[Sequence[T]], Awaitable[Sequence[BaseException | None]]]


class Coalescer(Generic[T]):
    """Items submitted while a batch runs are run together in the next batch.

    A single item starts at once; under load, batches grow to whatever queued
    up during the previous one, so the cost per item falls as load rises.
    Each submitter gets its own item's outcome.
    """

    def __init__(self, run_batch: BatchRunner[T]):
        self._run_batch = run_batch
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await self._run_batch([item for item, _ in batch])
            except BaseException as e:
                outcomes = [e] * len(batch)
                if isinstance(e, asyncio.CancelledError):
                    for _, future in batch + self._queue:
                        if not future.done():
                            future.cancel()
                    self._queue = []
                    raise
            for (_, future), outcome in zip(batch, outcomes):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)
