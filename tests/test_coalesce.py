"""Coalescer: what queues up during a batch runs as the next batch; each caller
gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from traefik_proxy.coalesce import Coalescer


class Recorder:
    """A batch runner that records its batches and can be held at the start of one."""

    def __init__(self, outcome=lambda item: None):
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.outcome = outcome

    async def __call__(self, items):
        self.batches.append(list(items))
        await self.release.wait()
        return [self.outcome(item) for item in items]


async def hold_a_batch_of_a():
    """A coalescer whose first batch, ["a"], is running and held."""
    runner = Recorder()
    runner.release.clear()
    coalescer = Coalescer(runner)
    first = asyncio.create_task(coalescer.submit("a"))
    await asyncio.sleep(0.01)
    return runner, coalescer, first


async def test_items_queued_during_a_batch_run_as_one_next_batch():
    runner, coalescer, first = await hold_a_batch_of_a()
    assert runner.batches == [["a"]]  # a lone item starts at once
    later = [asyncio.create_task(coalescer.submit(x)) for x in "bcd"]
    await asyncio.sleep(0.01)
    assert runner.batches == [["a"]], "a batch started while the previous one ran"
    runner.release.set()
    await asyncio.gather(first, *later)
    assert runner.batches == [["a"], ["b", "c", "d"]]


async def test_each_submitter_gets_its_own_outcome():
    runner = Recorder(outcome=lambda item: ValueError(item) if item.startswith("bad") else None)
    coalescer = Coalescer(runner)
    results = await asyncio.gather(
        *(coalescer.submit(x) for x in ["ok1", "bad1", "ok2", "bad2"]), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad1"
    assert isinstance(results[3], ValueError) and str(results[3]) == "bad2"


async def test_an_exception_in_run_batch_reaches_every_waiter():
    async def failing(items):
        raise RuntimeError(f"store down for {len(items)}")

    coalescer = Coalescer(failing)
    results = await asyncio.gather(*(coalescer.submit(x) for x in "xyz"), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3
    # the queue is not stuck: the next item gets a batch of its own
    with pytest.raises(RuntimeError, match="for 1"):
        await coalescer.submit("again")


async def test_cancelled_batch_cancels_its_waiters_and_the_queued_ones():
    runner, coalescer, running = await hold_a_batch_of_a()
    queued = asyncio.create_task(coalescer.submit("b"))
    await asyncio.sleep(0.01)
    coalescer._worker.cancel()
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
