"""What Traefik says about itself: routers listed in its API, config reloads
counted in its Prometheus metrics, and when its CPU is quiet again."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from typing import Any

from tests.servers import free_port

from .procs import cpu_seconds

#: the entrypoint serving Prometheus metrics, beside the public and API ones
METRICS_ENTRYPOINT = "benchmetrics"


def metrics_static(address: str | None = None) -> dict[str, Any]:
    """Static config serving Traefik's Prometheus metrics on an entrypoint of
    their own (at ``address``, default a free port); no per-service labels:
    counting reloads must not add 10,000 series."""
    return {
        "entryPoints": {METRICS_ENTRYPOINT: {"address": address or f"127.0.0.1:{free_port()}"}},
        "metrics": {
            "prometheus": {
                "entryPoint": METRICS_ENTRYPOINT,
                "addServicesLabels": False,
                "addEntryPointsLabels": False,
                "addRoutersLabels": False,
            }
        },
    }


def metrics_url(static: dict[str, Any]) -> str:
    """Where the metrics of :func:`metrics_static` are ("" without them)."""
    entrypoint = static.get("entryPoints", {}).get(METRICS_ENTRYPOINT)
    return f"http://{entrypoint['address']}" if entrypoint else ""


async def reloads(url: str) -> float | None:
    """Traefik's traefik_config_reloads_total at the metrics ``url``, or None when not exposed."""
    if not url:
        return None
    import httpx

    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(f"{url}/metrics")).text
    m = re.search(r"^traefik_config_reloads_total\S* ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


async def wait_for_routers(client: Any, n: int, process: Any, timeout: float = 600) -> None:
    """Until Traefik's API (an httpx.AsyncClient on it) lists ``n`` routers;
    ``process`` is a Popen or an asyncio subprocess (our proxy's traefik)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll() if isinstance(process, subprocess.Popen) else process.returncode
        if code is not None:
            raise RuntimeError(f"traefik exited with {code}")
        try:
            r = await client.get("/api/overview")
            if r.status_code == 200 and r.json()["http"]["routers"]["total"] >= n:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"traefik did not list {n} routers within {timeout}s")


async def settle(traefik_pid: int | None, store: Any = None, quiet: float = 1.5, limit: float = 180) -> float:
    """Wait until Traefik is done with earlier changes; seconds it took.

    With a key-value provider each store event makes Traefik list the whole
    prefix again, even when a route is already live, so a burst leaves a
    backlog of such listings. Done means: no new listing (when ``store``, a
    :class:`~benchmarks.harness.stores.StoreServer`, counts them) and Traefik
    nearly idle (under 10% of a core) for ``quiet`` seconds; a listing can take
    longer than any fixed pause. Gives up after ``limit`` seconds (then the
    result is ``limit`` minus less than ``quiet``).
    """

    def reads() -> float | None:
        return store.counters().get("reads") if store is not None else None

    started = time.monotonic()
    last, cpu = reads(), cpu_seconds(traefik_pid) or 0.0
    quiet_since = started
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now, cpu_now = reads(), cpu_seconds(traefik_pid) or 0.0
        if now != last or cpu_now - cpu > 0.05:
            quiet_since = time.monotonic()
        last, cpu = now, cpu_now
        if time.monotonic() - quiet_since >= quiet:
            break
    return max(quiet_since - started, 0.0)
