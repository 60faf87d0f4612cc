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
before the churn (median of 5), the resident memory of every server
process (with ``+shardsK``, the front's traefik and each shard's), the
largest shard's routes, and the CPU seconds of each part (front, shards,
this process as the Hub side, store) over the load and each wrk window.

``--names`` picks the user names (:mod:`benchmarks.harness.names`): the
first N of a distribution in the Hub's order are held, the next ones start
during the churn, and the measured user is the last of the N.

``ours-<store>+shardsK[-eager][-gc][-fixedfront]`` runs that proxy with
``traefik_shards = K`` (see :func:`benchmarks.harness.systems.variant_traits`).

Cores: the proxy's server (traefik, CHP's node), its store, and this process
(the Hub side, calling the Proxy API) share CPU 0; wrk and the backend
(``benchmarks/backend.js``) share CPU 1. Loads are bounded and go to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .harness import cli, systems
from .harness.names import NAMES, names_of, new_users, user_routes
from .harness.output import duration, percentile, pyplot, save, sayer, text_table, write_json
from .harness.procs import (
    LOAD_CPU,
    PROXY_CPU,
    cpu_seconds,
    machine_info,
    on_cpu,
    require_load_tools,
    rss_bytes,
    server_pid,
)
from .harness.stores import StoreServer, store_kind
from .harness.traffic import NodeBackend, wait_for_body, wrk

HERE = Path(__file__).resolve().parent
#: JupyterHub's subdomain_host with ``--subdomains`` (as in :mod:`.dataplane`)
SUBDOMAIN_HOST = "hub.test"


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


async def measure_system(system: str, args: argparse.Namespace, backend: NodeBackend) -> dict[str, Any]:
    kind = store_kind(system)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix=f"churn-{system}-") as tmp:
        with on_cpu(PROXY_CPU):  # the store runs on the proxy's core too
            store = stack.enter_context(StoreServer(kind)) if kind else None
        spec = {
            "chp_command": str(args.chp_command),
            "store_url": store.url if store else "",
            "traits": args.traits,
            "subdomain_host": SUBDOMAIN_HOST if args.subdomains else "",
        }
        made = systems.make(system, spec, Path(tmp))
        # the Hub side shares the proxy's core for the whole run
        stack.enter_context(on_cpu(PROXY_CPU))
        store_process = getattr(getattr(store, "_server", None), "process", None)
        async with systems.running(made.proxy):
            return await _measure(system, made, args, backend, getattr(store_process, "pid", None))


async def _measure(
    system: str, made: Any, args: argparse.Namespace, backend: NodeBackend, store_pid: int | None = None
) -> dict[str, Any]:
    proxy = made.proxy
    say = sayer(args.quiet)
    count = int(args.rate * args.duration) + 1
    if args.names == "realistic":
        routes, measured = user_routes(args.routes, "realistic")
        taken = set(routes)
        lone_users = new_users(5, taken, seed=11)
        churn_users = new_users(count, taken)
    else:  # the Hub's order: the first N held, the next ones start during the run
        users = names_of(args.names, args.routes + 5 + count)
        if args.subdomains:  # as JupyterHub adds them with subdomain_host
            every = [f"{n}.{SUBDOMAIN_HOST}/user/{n}/" for n in users]
        else:
            every = [f"/user/{n}/" for n in users]
        routes, lone_users, churn_users = every[: args.routes], every[-5 - count : -count], every[-count:]
        measured = users[args.routes - 1]
    host = f"{measured}.{SUBDOMAIN_HOST}" if args.subdomains else None
    measured_route = f"{host}/user/{measured}/" if host else f"/user/{measured}/"
    pid = server_pid(proxy)
    # every server process: the front's and each shard's traefik
    shards = getattr(getattr(proxy, "_shard_set", None), "shards", [])
    pids = [pid, *(server_pid(shard) for shard in shards)]
    # where the proxy core's CPU goes: the load's and each wrk window's CPU seconds per part
    parts = {"front": pids[:1], "shards": pids[1:], "hub": [os.getpid()], "store": [store_pid]}

    def cpu() -> dict[str, float]:
        return {part: sum(cpu_seconds(p) or 0.0 for p in ps if p) for part, ps in parts.items()}

    def spent(before: dict[str, float]) -> dict[str, float]:
        return {part: round(used - before[part], 2) for part, used in cpu().items()}

    say(f"  {system}: loading {args.routes:,} routes")
    before = cpu()
    load_s = await systems.load_routes(
        proxy, routes, backend.url("user"), hub=backend.url("hub"), batch=args.load_batch
    )
    load_cpu_s = spent(before)
    url = f"{made.public_url}/user/{measured}/lab"
    await asyncio.to_thread(wait_for_body, url, "user", 60, host)
    result: dict[str, Any] = {
        "system": system,
        "routes": args.routes,
        "rate": args.rate,
        "duration": args.duration,
        "load_s": load_s,
        "load_cpu_s": load_cpu_s,
        "measured": url,
        "host": host,
        "names": args.names,
        "subdomains": args.subdomains,
    }
    result["rss_mb"] = sum(rss_bytes(p) or 0 for p in pids if p) / 2**20
    if shards:  # how evenly the names spread: the busiest shard's routes
        held_by = await asyncio.gather(*(shard.get_all_routes() for shard in shards))
        result["largest_shard"] = max(len(r) for r in held_by)

    say(f"  {system}: idle, wrk {args.duration:g} s")
    await asyncio.sleep(args.settle)
    before = cpu()
    result["idle"] = await asyncio.to_thread(wrk, url, args.duration, args.connections, 1, pid, host)
    result["idle_cpu_s"] = spent(before)

    # one add at a time, nothing else changing: what a lone spawn waits
    lone: list[float] = []
    for routespec in lone_users:
        started = time.monotonic()
        await proxy.add_route(routespec, backend.url("user"), {})
        lone.append(time.monotonic() - started)
    result["add_idle_ms"] = 1e3 * percentile(lone, 50)

    held = [r for r in routes if r != measured_route]
    deletes = random.Random(3).sample(held, min(count, len(held)))
    churn = Churn(proxy, backend.url("user"), churn_users, deletes, args.rate)
    say(f"  {system}: churn at {args.rate:g} changes/s, wrk {args.duration:g} s")
    stop = asyncio.Event()
    runner = asyncio.create_task(churn.run(stop))
    before = cpu()
    try:
        result["churn"] = await asyncio.to_thread(wrk, url, args.duration, args.connections, 1, pid, host)
    finally:
        stop.set()
        await runner
    result["churn_cpu_s"] = spent(before)
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
        f"  {system}: loaded in {load_s:.1f} s, one add alone {result['add_idle_ms']:.0f} ms"
        + (f", largest shard {result['largest_shard']:,} routes" if "largest_shard" in result else "")
        + "; "
        f"idle {idle['rps']:,.0f} req/s (p99 {idle['p99_ms']:.1f} ms), "
        f"churn {busy['rps']:,.0f} (p99 {busy['p99_ms']:.1f} ms, x{result['ratio']:.2f}), "
        f"add p50 {fmt_ms(result['add_p50_ms'])} p99 {fmt_ms(result['add_p99_ms'])}, "
        f"{result['changes_done']}/{result['changes_started']} changes, "
        f"{result['changes_failed']} failed, failed requests "
        f"{busy['errors'] + busy['non2xx']}; CPU s load {load_cpu_s}, idle {result['idle_cpu_s']}, "
        f"churn {result['churn_cpu_s']}",
    )
    return result


def fmt_ms(value: float | None) -> str:
    return duration(None if value is None else value / 1e3)


def table(results: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "N",
        "RSS",
        "largest shard",
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
                [
                    r["system"],
                    f"{r['routes']:,}",
                    "",
                    "",
                    "",
                    "",
                    f"{r['rate']:g}",
                    "error: " + r["error"][:60],
                ]
                + [""] * (len(header) - 8)
            )
            continue
        idle, busy = r["idle"], r["churn"]
        rows.append(
            [
                r["system"],
                f"{r['routes']:,}",
                f"{r.get('rss_mb', 0):,.0f} MB",
                f"{r['largest_shard']:,}" if "largest_shard" in r else "",
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
    lines = text_table(rows)
    lines.append(
        "targets (issue 22, 10,000 routes, 5 changes/s): ratio >= 0.8, add p99 <= 1 s, "
        "every change done, 0 failed requests"
    )
    return "\n".join(lines)


def plot(path: Path, results: list[dict[str, Any]]) -> None:
    plt = pyplot()
    ok = [r for r in results if "error" not in r]
    if plt is None or not ok:
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
    save(fig, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("churn", __doc__)
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
    p.add_argument(
        "--names",
        default="realistic",
        choices=NAMES,
        help="user names (benchmarks.harness.names); realistic: the measured user in the largest bucket, "
        "others: the last of the N in the Hub's order",
    )
    p.add_argument(
        "--subdomains",
        action="store_true",
        help="host routes, as JupyterHub adds with subdomain_host: <name>.hub.test/user/<name>/ "
        "(not with --names realistic)",
    )
    p.add_argument("--connections", type=int, default=50, help="wrk -c")
    p.add_argument("--settle", type=float, default=3, help="seconds of rest after loading")
    p.add_argument("--drain", type=float, default=120, help="seconds to wait for late changes")
    p.add_argument("--load-batch", type=int, default=2000, help="concurrent adds while loading")
    p.add_argument("--chp-command", default=str(systems.CHP_COMMAND))
    p.add_argument("--setup", action="store_true", help="npm install CHP when missing")
    p.add_argument("--out", default=str(HERE / "results" / "churn"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.subdomains and args.names == "realistic":
        p.error("--subdomains needs --names other than realistic (the Hub's order of a distribution)")
    args.traits = cli.traits(args.trait)
    return args


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    require_load_tools()
    results = []
    backend = NodeBackend("user", "hub").start()
    try:
        for system in cli.items(args.systems):
            try:
                results.append(await measure_system(system, args, backend))
            except Exception as e:  # one system failing must not lose the others' numbers
                sayer(args.quiet)(f"  {system}: FAILED {type(e).__name__}: {e}")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems.require_chp(cli.items(args.systems), args.chp_command, args.setup)
    cli.sigterm_as_interrupt()
    results = asyncio.run(amain(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"argv": vars(args), **machine_info(), "load_cpu": LOAD_CPU, "proxy_cpu": PROXY_CPU}
    write_json(out / "churn.json", {"meta": meta, "results": results})
    plot(out / "churn.png", results)
    print(table(results))
    print(f"wrote {out / 'churn.json'}, {out / 'churn.png'}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
