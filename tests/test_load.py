"""Load: 10,000 routes held, bursts of 200 concurrent adds and deletes, while
requests keep flowing to an unchanged route through Traefik."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from .proxies import make_proxy

HELD = 10_000
BURST = 200


@pytest.mark.parametrize("kind", ["file", "etcd"])
async def test_no_failed_request_while_routes_churn(kind, request, tmp_path, backends):
    # one transaction per batch: every etcd transaction is a Traefik re-read
    extra = {"etcd_max_txn_ops": 100_000, "etcd_max_txn_bytes": 30_000_000} if kind == "etcd" else {}
    proxy = make_proxy(kind, request, tmp_path, check_route_timeout=120, **extra)
    await proxy.start()
    try:
        started = time.monotonic()
        await asyncio.gather(
            *(proxy.add_route(f"/held/{i}/", backends["b"].url, {"i": i}) for i in range(HELD))
        )
        held_after = time.monotonic() - started
        await proxy.add_route("/user/steady/", backends["a"].url, {})
        assert len(await proxy.get_all_routes()) == HELD + 1

        stop = asyncio.Event()
        counts = {"ok": 0, "failed": 0}

        async def load() -> None:
            # bounded: ends when the churn ends, or after 120 s at most
            deadline = time.monotonic() + 120
            async with httpx.AsyncClient(base_url=proxy.public_url) as client:
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        response = await client.get("/user/steady/api/status")
                        good = response.status_code == 200 and response.json()["backend"] == "a"
                    except httpx.HTTPError:
                        good = False
                    counts["ok" if good else "failed"] += 1

        loader = asyncio.create_task(load())
        churn_started = time.monotonic()
        for round_ in range(2):
            specs = [f"/churn/{round_}/{i}/" for i in range(BURST)]
            await asyncio.gather(*(proxy.add_route(s, backends["b"].url, {}) for s in specs))
            await asyncio.gather(*(proxy.delete_route(s) for s in specs))
        churn = time.monotonic() - churn_started
        stop.set()
        await loader
        print(
            f"{kind}: {HELD} routes held in {held_after:.1f}s; churn of 2x{BURST} adds+deletes "
            f"in {churn:.1f}s; requests ok={counts['ok']} failed={counts['failed']}"
        )
        assert counts["failed"] == 0
        assert counts["ok"] > 10
        assert len(await proxy.get_all_routes()) == HELD + 1
    finally:
        await proxy.stop()
