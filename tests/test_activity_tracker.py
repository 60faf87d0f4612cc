"""ActivityTracker: stamps from counter readings, and a close that waits for its task."""

from __future__ import annotations

import asyncio
import logging

import httpx

from traefik_proxy.activity_tracker import ActivityTracker


def metrics(**counts: int) -> str:
    return "".join(
        f'traefik_service_requests_total{{code="200",method="GET",protocol="http",'
        f'service="{name}@file"}} {count}\n'
        for name, count in counts.items()
    )


async def test_stamps_the_routes_whose_counters_grew():
    readings = iter([metrics(a=1, b=1), metrics(a=2, b=1), metrics(a=2, b=1)])

    async def read():
        return next(readings)

    tracker = ActivityTracker(read, "file", 30, logging.getLogger("test.activity"))
    await tracker.read()
    assert tracker.last_activity == {}  # the first reading is the baseline
    await tracker.read()
    assert set(tracker.last_activity) == {"a"}
    stamp = tracker.last_activity["a"]
    await tracker.read()
    assert tracker.last_activity == {"a": stamp}
    tracker.keep_only({"b"})
    assert tracker.last_activity == {}


async def test_an_unreachable_api_is_a_warning_not_an_error(caplog):
    async def read():
        raise httpx.ConnectError("refused")

    tracker = ActivityTracker(read, "file", 30, logging.getLogger("test.activity"))
    await tracker.read()
    assert "Could not read Traefik's metrics" in caplog.text


async def test_close_waits_until_the_background_reading_has_stopped():
    reading = asyncio.Event()

    async def read():
        reading.set()
        await asyncio.sleep(3600)  # a reading still in flight when the proxy stops
        return ""

    tracker = ActivityTracker(read, "file", 30, logging.getLogger("test.activity"))
    tracker.start()
    await reading.wait()
    task = tracker._task
    await tracker.close()
    assert task.done() and task.cancelled()
