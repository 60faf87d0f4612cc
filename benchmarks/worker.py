"""Measure one system at one size, through the JupyterHub Proxy API only.

Run by :mod:`benchmarks.bench` as ``python -m benchmarks.worker SPEC_JSON``,
one process per (system, size), so memory is this system's alone and a crash
loses one cell. The result JSON is rewritten after every phase: if the run is
killed at its time limit, what was measured so far survives.

Phases, on a freshly started proxy:

1. bulk add: N concurrent ``add_route`` (``asyncio.gather``) — this also builds
   the N routes the next phases run against; RSS before and after;
2. ``get_all_routes`` at N routes, a few times;
3. sequential ``add_route`` of new routes on top of N, one at a time, each
   timed until it returns (the Proxy API's "added" = live for the traefik
   proxies); after each, untimed, one request through the public URL checks the
   route really serves;
4. sequential ``delete_route`` of those routes, the same way;
5. bulk delete: N concurrent ``delete_route``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .harness import systems
from .harness.output import percentile, summary_ms, write_json
from .harness.procs import child_pids, local_environment, rss_bytes
from .harness.traffic import ProbeBackend, probe


def children_rss(pids: list[int]) -> int | None:
    values = [v for v in map(rss_bytes, pids) if v is not None]
    return sum(values) if values else None


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class PhaseTimer:
    """Wraps some of a proxy's private coroutine methods to time them (diagnostics only)."""

    def __init__(self, proxy: Any, names: list[str]):
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        for name in names:
            method = getattr(proxy, name, None)
            if method is None or not inspect.iscoroutinefunction(method):
                continue
            setattr(proxy, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()


class Worker:
    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.out = Path(spec["out"])
        self.result: dict[str, Any] = {
            "system": spec["system"],
            "size": spec["size"],
            "samples": spec["samples"],
            "python": sys.executable,
            "status": "running",
            "phase": "setup",
            "metrics": {},
            # the machine is shared: other processes' load shows in the timings
            "loadavg_start": os.getloadavg()[0],
        }

    def flush(self) -> None:
        self.result["loadavg_end"] = os.getloadavg()[0]
        write_json(self.out, self.result)

    def phase(self, name: str) -> None:
        self.result["phase"] = name
        self.flush()

    async def run(self, workdir: Path) -> None:
        spec = self.spec
        m = self.result["metrics"]
        n = spec["size"]
        samples = spec["samples"]
        backend = await ProbeBackend().start()
        made = systems.make(spec["system"], spec, workdir)
        proxy = made.proxy
        timer = PhaseTimer(proxy, made.phases) if made.phases else None
        started = False
        try:
            gc.collect()
            m["rss_import_bytes"] = rss_bytes()
            self.phase("start")
            t = time.perf_counter()
            await maybe_await(proxy.start())
            started = True
            m["start_s"] = time.perf_counter() - t
            pids = child_pids()
            self.result["server_pids"] = pids
            gc.collect()
            m["rss_before_bytes"] = rss_bytes()
            m["server_rss_before_bytes"] = children_rss(pids)

            # 1. bulk add: builds the N routes the other phases run on
            self.phase("bulk_add")
            if timer:
                timer.reset()
            bulk = [f"/bench/b{i}/" for i in range(n)]
            t = time.perf_counter()
            await asyncio.gather(
                *(proxy.add_route(r, backend.url, {"user": f"b{i}"}) for i, r in enumerate(bulk))
            )
            m["bulk_add_s"] = time.perf_counter() - t
            if timer:
                m["bulk_add_calls"] = dict(timer.calls)
            gc.collect()
            m["rss_after_bytes"] = rss_bytes()
            m["server_rss_after_bytes"] = children_rss(pids)
            if m["rss_before_bytes"] and m["rss_after_bytes"]:
                m["bytes_per_route"] = (m["rss_after_bytes"] - m["rss_before_bytes"]) / n
            if m["server_rss_before_bytes"] and m["server_rss_after_bytes"]:
                m["server_bytes_per_route"] = (m["server_rss_after_bytes"] - m["server_rss_before_bytes"]) / n
            self.flush()

            # 2. get_all_routes at N routes
            self.phase("get_all_routes")
            durations = []
            for _ in range(spec["get_all_repeats"]):
                t = time.perf_counter()
                routes = await proxy.get_all_routes()
                durations.append(time.perf_counter() - t)
            m["get_all_routes"] = summary_ms(durations)
            m["routes_seen"] = sum(1 for r in routes if r.startswith("/bench/b"))
            self.flush()

            # 3. sequential add_route on top of N routes, each until it returns
            self.phase("add_route")
            seq = [f"/bench/s{i}/" for i in range(samples)]
            durations, live, phases = [], 0, []
            for i, r in enumerate(seq):
                if timer:
                    timer.reset()
                t = time.perf_counter()
                await proxy.add_route(r, backend.url, {"user": f"s{i}"})
                durations.append(time.perf_counter() - t)
                if timer:
                    phases.append(dict(timer.totals))
                live += await probe(made.public_url, f"{r}probe")
            m["add_route"] = summary_ms(durations)
            m["live_on_return"] = live / samples if samples else None
            if phases:
                m["add_route_phases_p50_ms"] = {
                    name: percentile([p.get(name, 0.0) * 1e3 for p in phases], 50)
                    for name in sorted({k for p in phases for k in p})
                }
            self.flush()

            # 4. sequential delete_route
            self.phase("delete_route")
            durations, gone = [], 0
            for r in seq:
                t = time.perf_counter()
                await proxy.delete_route(r)
                durations.append(time.perf_counter() - t)
                gone += not await probe(made.public_url, f"{r}probe")
            m["delete_route"] = summary_ms(durations)
            m["gone_on_return"] = gone / samples if samples else None
            self.flush()

            # 5. bulk delete
            self.phase("bulk_delete")
            if timer:
                timer.reset()
            t = time.perf_counter()
            await asyncio.gather(*(proxy.delete_route(r) for r in bulk))
            m["bulk_delete_s"] = time.perf_counter() - t
            if timer:
                m["bulk_delete_calls"] = dict(timer.calls)
            self.flush()
            left = await proxy.get_all_routes()
            m["routes_left"] = sum(1 for r in left if r.startswith("/bench/"))
            self.result["status"] = "ok"
        finally:
            self.phase(self.result["phase"])
            if started:
                try:
                    await asyncio.wait_for(maybe_await(proxy.stop()), 30)
                except BaseException as e:
                    self.result.setdefault("warnings", []).append(f"stop failed: {e!r}")
            await backend.stop()


async def amain(spec: dict[str, Any]) -> int:
    worker = Worker(spec)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    # the orchestrator sends SIGTERM at its time limit: stop the proxy's
    # server process on the way out instead of orphaning it
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec['system']}-") as tmp:
        try:
            await worker.run(Path(tmp))
        except asyncio.CancelledError:
            worker.result["status"] = "timeout"
            worker.result["error"] = f"stopped at the time limit during {worker.result['phase']}"
        except BaseException as e:
            worker.result["status"] = "error"
            worker.result["error"] = f"{type(e).__name__}: {e}"
            worker.result["traceback"] = traceback.format_exc()
        worker.flush()
    return 0 if worker.result["status"] == "ok" else 1


def main() -> int:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    local_environment()
    return asyncio.run(amain(spec))


if __name__ == "__main__":
    sys.exit(main())
