"""Spawn storm: requests through the proxy while routes change, against idle.

    .venv/bin/python -m benchmarks.churn --routes 10000 --rate 5 --duration 12 \\
        --systems ours-file,ours-etcd,ours-redis,chp --out DIR

For each system: a fresh proxy (and store) holds N user routes and the Hub's
``/``. ``wrk`` measures one user's route idle, then again while the Hub side
starts R changes per second without waiting for each other, as JupyterHub
does when servers start and stop: each change is an ``add_route`` of a new
user and a ``delete_route`` of an old one, run concurrently. The user wrk
asks for is never changed, and sits in the largest bucket of the route tree.

Reported per system: req/s and p99 idle and during churn (and their ratio),
failed requests (wrk's errors and non-2xx answers), ``add_route`` p50 / p99
(until it returned: live on every Traefik that must serve it), and how many
changes were started, done and failed. Changes still running when wrk ends
are waited for (``--drain``), so a slow one counts. Also: the time to load
the N routes (``--load-batch`` concurrent adds at a time), one add alone
before the churn (median of 5), and the resident memory of every server
process (with ``+shardsK``, the front's traefik and each shard's).

``ours-<store>+shardsK[-eager][-gc]`` runs that proxy with
``traefik_shards = K`` (see :func:`shard_traits`).

Cores: the proxy's server (traefik, CHP's node), its store, and this process
(the Hub side, calling the Proxy API) share CPU 0; wrk and the backend
(``benchmarks/backend.js``) share CPU 1. Loads are bounded and go to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from . import dataplane
from .dataplane import LOAD_CPU, PROXY_CPU, Backend, on_cpu, server_pid, user_routes, wrk
from .servers import StoreServer, store_kind
from .systems import trait_value
from .worker import percentile

HERE = Path(__file__).resolve().parent


def new_users(count: int, taken: set[str], seed: int = 7) -> list[str]:
    """``count`` routespecs of users not in ``taken``, with names like the held ones."""
    from .experiments.shapes import user_names

    fresh = [f"/user/{n}/" for n in user_names(len(taken) + count + 100, seed=seed)]
    return [r for r in fresh if r not in taken][:count]


class Churn:
    """R changes per second, each an add of a new user and a delete of an old one."""

    def __init__(self, proxy: Any, target: str, adds: list[str], deletes: list[str], rate: float):
        self.proxy, self.target, self.rate = proxy, target, rate
        self.adds, self.deletes = adds, deletes
        self.add_seconds: list[float] = []
        self.failures: list[str] = []
        self.started = 0
        self.tasks: list[asyncio.Task] = []

    async def _change(self, add: str, delete: str) -> None:
        async def timed_add() -> None:
            t0 = time.perf_counter()
            await self.proxy.add_route(add, self.target, {})
            self.add_seconds.append(time.perf_counter() - t0)

        outcomes = await asyncio.gather(timed_add(), self.proxy.delete_route(delete), return_exceptions=True)
        self.failures += [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]

    async def run(self, stop: asyncio.Event) -> None:
        """Start a change every 1/rate s (on a fixed schedule) until ``stop`` is set."""
        began = time.monotonic()
        while not stop.is_set() and self.started < len(self.adds):
            i = self.started
            self.tasks.append(asyncio.create_task(self._change(self.adds[i], self.deletes[i])))
            self.started += 1
            delay = began + self.started / self.rate - time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, delay))

    async def drain(self, timeout: float) -> int:
        """Wait for the changes still running; returns how many did not finish in time."""
        if not self.tasks:
            return 0
        _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        return len(pending)


async def measure_system(system: str, args: argparse.Namespace, backend: Backend) -> dict[str, Any]:
    from . import systems

    kind = store_kind(system.partition("+")[0])
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix=f"churn-{system}-") as tmp:
        with on_cpu(PROXY_CPU):  # the store runs on the proxy's core too
            store = stack.enter_context(StoreServer(kind)) if kind else None
        base, _, variant = system.partition("+")
        traits = dict(args.traits)
        spec = {
            "system": base,
            "size": args.routes,
            "chp_command": str(args.chp_command),
            "store_url": store.url if store else "",
            "traits": traits,
        }
        if variant.startswith("shards"):
            if not base.startswith("ours-"):
                raise SystemExit(f"{system}: only our proxies have shards")
            traits.update(shard_traits(variant))
        elif variant:
            raise SystemExit(f"{system}: unknown variant +{variant}")
        made = systems.make(base, spec, Path(tmp))
        # the Hub side shares the proxy's core for the whole run
        stack.enter_context(on_cpu(PROXY_CPU))
        await made.proxy.start()
        try:
            return await _measure(system, made, args, backend)
        finally:
            stopped = made.proxy.stop()
            if asyncio.iscoroutine(stopped):
                await stopped


def shard_traits(variant: str) -> dict[str, Any]:
    """``+shardsK[-eager][-gc]``: traefik_shards = K (any of our stores);
    ``eager``: every delete written at once (traefik_shard_delete_delay = 0);
    ``gc``: the shard traefiks with Go's default GOGC instead of 400."""
    count, *flags = variant[len("shards") :].split("-")
    unknown = set(flags) - {"eager", "gc"}
    if not count.isdigit() or unknown:
        raise SystemExit(f"+{variant}: expected +shardsK[-eager][-gc]")
    traits: dict[str, Any] = {"traefik_shards": int(count)}
    if "eager" in flags:
        traits["traefik_shard_delete_delay"] = 0.0
    if "gc" in flags:
        traits["traefik_shard_env"] = {}
    return traits


async def _measure(system: str, made: Any, args: argparse.Namespace, backend: Backend) -> dict[str, Any]:
    proxy = made.proxy
    routes, measured = user_routes(args.routes, "realistic")
    say(args, f"  {system}: loading {args.routes:,} routes")
    t0 = time.monotonic()
    await proxy.add_route("/", backend.url("hub"), {"hub": True})
    for i in range(0, len(routes), args.load_batch):
        await asyncio.gather(
            *(proxy.add_route(r, backend.url("user"), {}) for r in routes[i : i + args.load_batch])
        )
    load_s = time.monotonic() - t0
    url = f"{made.public_url}/user/{measured}/lab"
    await asyncio.to_thread(dataplane.wait_for_body, url, "user", 60)
    pid = server_pid(proxy)
    result: dict[str, Any] = {
        "system": system,
        "routes": args.routes,
        "rate": args.rate,
        "duration": args.duration,
        "load_s": load_s,
        "measured": url,
    }
    # every server process's memory: the front's and each shard's traefik
    shards = getattr(getattr(proxy, "_shard_set", None), "shards", [])
    pids = [pid, *(server_pid(shard) for shard in shards)]
    result["rss_mb"] = sum(dataplane.rss_mb(p) or 0 for p in pids)

    say(args, f"  {system}: idle, wrk {args.duration:g} s")
    await asyncio.sleep(args.settle)
    result["idle"] = await asyncio.to_thread(wrk, url, args.duration, args.connections, 1, pid)

    # one add at a time, nothing else changing: what a lone spawn waits
    lone: list[float] = []
    for routespec in new_users(5, set(routes), seed=11):
        started = time.monotonic()
        await proxy.add_route(routespec, backend.url("user"), {})
        lone.append(time.monotonic() - started)
    result["add_idle_ms"] = 1e3 * percentile(lone, 50)

    count = int(args.rate * args.duration) + 1
    held = [r for r in routes if r != f"/user/{measured}/"]
    deletes = random.Random(3).sample(held, min(count, len(held)))
    churn = Churn(proxy, backend.url("user"), new_users(count, set(routes)), deletes, args.rate)
    say(args, f"  {system}: churn at {args.rate:g} changes/s, wrk {args.duration:g} s")
    stop = asyncio.Event()
    runner = asyncio.create_task(churn.run(stop))
    try:
        result["churn"] = await asyncio.to_thread(wrk, url, args.duration, args.connections, 1, pid)
    finally:
        stop.set()
        await runner
    t_drain = time.monotonic()
    unfinished = await churn.drain(args.drain)
    adds = churn.add_seconds
    result.update(
        changes_started=churn.started,
        changes_done=len(adds),
        changes_failed=len(churn.failures) + unfinished,
        failures=churn.failures[:5],
        drain_s=time.monotonic() - t_drain,
        add_p50_ms=1e3 * percentile(adds, 50) if adds else None,
        add_p99_ms=1e3 * percentile(adds, 99) if adds else None,
        add_max_ms=1e3 * max(adds) if adds else None,
    )
    idle, busy = result["idle"], result["churn"]
    result["ratio"] = busy["rps"] / idle["rps"] if idle["rps"] else None
    say(
        args,
        f"  {system}: loaded in {load_s:.1f} s, one add alone {result['add_idle_ms']:.0f} ms; "
        f"idle {idle['rps']:,.0f} req/s (p99 {idle['p99_ms']:.1f} ms), "
        f"churn {busy['rps']:,.0f} (p99 {busy['p99_ms']:.1f} ms, x{result['ratio']:.2f}), "
        f"add p50 {fmt_ms(result['add_p50_ms'])} p99 {fmt_ms(result['add_p99_ms'])}, "
        f"{result['changes_done']}/{result['changes_started']} changes, "
        f"{result['changes_failed']} failed, failed requests "
        f"{busy['errors'] + busy['non2xx']}",
    )
    return result


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e3:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def table(results: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "N",
        "RSS",
        "load",
        "add alone",
        "changes/s",
        "req/s idle",
        "req/s churn",
        "ratio",
        "p99 idle",
        "p99 churn",
        "add p50",
        "add p99",
        "changes done/started",
        "failed changes",
        "failed requests",
    ]
    rows = [header]
    for r in results:
        if "error" in r:
            rows.append(
                [r["system"], f"{r['routes']:,}", "", "", "", f"{r['rate']:g}", "error: " + r["error"][:60]]
                + [""] * (len(header) - 7)
            )
            continue
        idle, busy = r["idle"], r["churn"]
        rows.append(
            [
                r["system"],
                f"{r['routes']:,}",
                f"{r.get('rss_mb', 0):,.0f} MB",
                f"{r['load_s']:.1f} s",
                fmt_ms(r.get("add_idle_ms")),
                f"{r['rate']:g}",
                f"{idle['rps']:,.0f}",
                f"{busy['rps']:,.0f}",
                f"x{r['ratio']:.2f}",
                f"{idle['p99_ms']:.1f} ms",
                f"{busy['p99_ms']:.1f} ms",
                fmt_ms(r["add_p50_ms"]),
                fmt_ms(r["add_p99_ms"]),
                f"{r['changes_done']}/{r['changes_started']}",
                str(r["changes_failed"]),
                str(idle["errors"] + idle["non2xx"] + busy["errors"] + busy["non2xx"]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        "targets (issue 22, 10,000 routes, 5 changes/s): ratio >= 0.8, add p99 <= 1 s, "
        "every change done, 0 failed requests"
    )
    return "\n".join(lines)


def plot(path: Path, results: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ok = [r for r in results if "error" not in r]
    if not ok:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["system"] for r in ok]
    xs = range(len(ok))
    left.bar([x - 0.2 for x in xs], [r["idle"]["rps"] for r in ok], 0.4, label="idle")
    left.bar([x + 0.2 for x in xs], [r["churn"]["rps"] for r in ok], 0.4, label="during churn")
    left.set_xticks(list(xs), names, rotation=20)
    left.set_ylabel("req/s (one user's route)")
    left.legend()
    right.bar([x - 0.2 for x in xs], [r["add_p50_ms"] or 0 for r in ok], 0.4, label="p50")
    right.bar([x + 0.2 for x in xs], [r["add_p99_ms"] or 0 for r in ok], 0.4, label="p99")
    right.set_yscale("log")
    right.set_xticks(list(xs), names, rotation=20)
    right.set_ylabel("add_route during churn (ms)")
    right.legend()
    r0 = ok[0]
    fig.suptitle(f"{r0['routes']:,} routes held, {r0['rate']:g} changes/s, {r0['duration']:g} s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.churn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--routes", type=int, default=10000, help="user routes held (N)")
    p.add_argument("--rate", type=float, default=5, help="changes started per second (R)")
    p.add_argument("--duration", type=float, default=12, help="seconds of each wrk run")
    p.add_argument("--systems", default="ours-file,ours-etcd,ours-redis,chp")
    p.add_argument(
        "--trait",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a traitlet for our proxies (VALUE is JSON, else a string)",
    )
    p.add_argument("--connections", type=int, default=50, help="wrk -c")
    p.add_argument("--settle", type=float, default=3, help="seconds of rest after loading")
    p.add_argument("--drain", type=float, default=120, help="seconds to wait for late changes")
    p.add_argument("--load-batch", type=int, default=2000, help="concurrent adds while loading")
    p.add_argument("--chp-command", default=str(dataplane.CHP_COMMAND))
    p.add_argument("--out", default=str(HERE / "results" / "churn"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.traits = {name: trait_value(raw) for name, _, raw in (t.partition("=") for t in args.trait)}
    return args


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    dataplane.require_tools()
    results = []
    backend = Backend("user", "hub").start()
    try:
        for system in [s.strip() for s in args.systems.split(",") if s.strip()]:
            try:
                results.append(await measure_system(system, args, backend))
            except Exception as e:  # one system failing must not lose the others' numbers
                say(args, f"  {system}: FAILED {type(e).__name__}: {e}")
                results.append(
                    {
                        "system": system,
                        "routes": args.routes,
                        "rate": args.rate,
                        "error": f"{type(e).__name__}: {e}",
                    }
                )
    finally:
        backend.stop()
    return results


def _interrupted(signum: int, frame: Any) -> None:
    # SIGTERM (e.g. from `timeout`) as Ctrl-C: asyncio.run then cancels the
    # run, whose `finally`s stop every traefik, store and backend it started
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    results = asyncio.run(amain(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "argv": vars(args) | {"traits": args.traits},
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "load_cpu": LOAD_CPU,
        "proxy_cpu": PROXY_CPU,
    }
    (out / "churn.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    plot(out / "churn.png", results)
    print(table(results))
    print(f"wrote {out / 'churn.json'}, {out / 'churn.png'}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
