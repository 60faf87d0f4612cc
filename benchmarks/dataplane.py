"""Data plane: requests per second and latency through the proxy, against route count.

    .venv/bin/python -m benchmarks.dataplane --sizes 10,1000,5000,10000 --out DIR

For each N and each name distribution (``--names``: random letters,
sequential ``u00042``, student numbers ``s2026xxxxx``, a shared start
``jupyter-...``, LDAP-like ``ab12345``, English-like ``realistic``), each
system (ours with the file provider, configurable-http-proxy) is started
fresh and given N user routes and the Hub's catch-all ``/`` through the
JupyterHub Proxy API (``add_route`` under ``asyncio.gather``, as a Hub
restoring its routes does). Then ``wrk`` measures

- several users: the shortest name (last in Traefik's order: priority is the
  rule's length), the last name in sorted order, the first added and a
  random one; the table reports the slowest, since a proxy is only as fast
  as its slowest user;
- the Hub's catch-all ``/`` (a path no user route matches, e.g. ``/hub/home``),
  which Traefik tries after every other router.

Cores: the proxy (traefik, or CHP's node process) runs on CPU 0 alone; wrk
and the backend (``benchmarks/backend.js``, node) share CPU 1. The same wrk
run straight at the backend, with no proxy, shows CPU 1's ceiling.

Writes ``dataplane.json`` and ``dataplane.png`` into ``--out`` and prints the
table. Loads are bounded (``-d`` seconds each) and go to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from .harness import cli, systems
from .harness.names import NAMES, names_of
from .harness.output import NO_MATPLOTLIB, pyplot, save, sayer, text_table, write_json
from .harness.procs import (
    LOAD_CPU,
    PROXY_CPU,
    machine_info,
    require_load_tools,
    rss_bytes,
    server_pid,
    wait_for_quiet,
)
from .harness.traffic import NodeBackend, wait_for_body, wrk

HERE = Path(__file__).resolve().parent
HUB_PATH = "/hub/home"


def measure(
    url: str, body: str, args: argparse.Namespace, pid: int | None = None, host: str | None = None
) -> dict[str, Any]:
    """Check the URL reaches the expected backend, warm up, then the median of
    --repeat runs (``host``: the Host header to send)."""
    wait_for_body(url, body, timeout=30, host=host)
    busy = wait_for_quiet(args.max_busy, args.quiet_timeout)
    if args.warmup > 0:
        wrk(url, args.warmup, args.connections, args.threads, host=host)
    runs = [wrk(url, args.duration, args.connections, args.threads, pid, host) for _ in range(args.repeat)]
    # the median run by req/s: the machine is shared, single runs are noisy
    runs.sort(key=lambda r: r["rps"])
    result = dict(runs[len(runs) // 2])
    result["rps_all"] = [round(r["rps"]) for r in runs]
    result["busy_before"] = busy
    return result


#: JupyterHub's subdomain_host with ``--subdomains``: each user's routes are
#: on ``<name>.hub.test``, the Hub's ``/`` stays path-only (every host)
SUBDOMAIN_HOST = "hub.test"
#: a host no route names (the Hub's catch-all takes it) with ``--subdomains``
NOBODY = "nobody-at-all"


def named_routes(size: int, names: str, subdomains: bool = False) -> tuple[list[str], dict[str, str]]:
    """(N user routespecs in the order they are added, {probe: user name}) for a
    distribution: the probes are the shortest name (the lowest priority among
    user routes; the first in sorted order of those), the last in sorted order,
    the first added and a random one. ``subdomains``: the routes JupyterHub
    adds with ``subdomain_host``, ``<name>.hub.test/user/<name>/``."""
    users = names_of(names, size)
    rng = random.Random(2026)
    probes = {
        "shortest": min(users, key=lambda n: (len(n), n)),
        "last": max(users),
        "first added": users[0],
        "random": rng.choice(users),
    }
    if subdomains:
        return [f"{n}.{SUBDOMAIN_HOST}/user/{n}/" for n in users], probes
    return [f"/user/{n}/" for n in users], probes


async def run_system(
    system: str, size: int, backend: NodeBackend, args: argparse.Namespace, names: str
) -> list[dict[str, Any]]:
    """One cell: ``system`` started fresh with N routes of ``names``, each probe and the Hub loaded."""
    say = sayer(args.quiet)
    with tempfile.TemporaryDirectory(prefix=f"dataplane-{system}-") as tmp:
        subdomain_host = SUBDOMAIN_HOST if args.subdomains else ""
        spec = {"chp_command": str(args.chp_command), "subdomain_host": subdomain_host}
        made = systems.make(system, spec, Path(tmp))
        async with systems.running(made.proxy, PROXY_CPU):
            routes, probes = named_routes(size, names, args.subdomains)
            setup_s = await systems.load_routes(
                made.proxy, routes, backend.url("user"), hub=backend.url("hub")
            )
            pid = server_pid(made.proxy)
            rss = rss_bytes(pid) if pid else None
            common = {
                "system": system,
                "size": size,
                "names": names,
                "subdomains": args.subdomains,
                "setup_s": setup_s,
                "proxy_cpus": sorted(os.sched_getaffinity(pid)) if pid else None,
                "server_rss_mb": rss / 2**20 if rss else None,
            }
            results = []

            def host(user: str) -> str | None:
                return f"{user}.{SUBDOMAIN_HOST}" if subdomain_host else None

            targets = [(probe, f"/user/{user}/lab", "user", host(user)) for probe, user in probes.items()]
            for kind, path, body, hostname in (*targets, ("hub", HUB_PATH, "hub", host(NOBODY))):
                url = made.public_url + path
                result = await asyncio.to_thread(measure, url, body, args, pid, hostname)
                result.update(common, route=kind, path=path)
                results.append(result)
                errors = result["errors"] or result["non2xx"]
                say(
                    f"  {system:9} N={size:<6} {names:10} {kind:11} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                    f"cpu {result['proxy_cpu_us_per_req'] or 0:5.0f} us/req  "
                    f"load {result['loadavg_before']:.1f} others {result['others_cpu_share']:.2f}"
                    + (f"  ERRORS {result['errors']} non-2xx {result['non2xx']}" if errors else "")
                )
            return results


# ------------------------------------------------------------------ report


def slowest(
    runs: list[dict[str, Any]], system: str, size: int, names: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the slowest user probe's run, the Hub's run) of one cell."""
    cell = [
        r for r in runs if (r["system"], r["size"], r.get("names", "sequential")) == (system, size, names)
    ]
    users = [r for r in cell if r["route"] != "hub"]
    hub = next((r for r in cell if r["route"] == "hub"), None)
    return (min(users, key=lambda r: r["rps"]) if users else None), hub


def table(document: dict[str, Any]) -> str:
    """One row per (names, N): each system's slowest user (which probe) and Hub
    req/s and p99; for ours (the first system), the issue's ratios."""
    runs = document["runs"]
    systems = document["meta"]["systems"]
    sizes = sorted({r["size"] for r in runs})
    distributions = list(dict.fromkeys(r.get("names", "sequential") for r in runs))
    ours = systems[0]
    header = ["names", "N"]
    for s in systems:
        header += [f"{s}: slowest user req/s", "p99 ms", "Hub req/s", "p99 ms"]
    header += [f"{ours}/{ours}@{sizes[0]}", "hub ratio", "p99/p99@min"]
    if "chp" in systems and ours != "chp":
        header += [f"{ours}/chp", "hub/chp"]
    rows = [header]
    for names in distributions:
        for size in sizes:
            row = [names, f"{size:,}"]
            for s in systems:
                user, hub = slowest(runs, s, size, names)
                row += (
                    [f"{user['rps']:,.0f} ({user['route']})", f"{user['p99_ms']:.1f}"] if user else ["-"] * 2
                )
                row += [f"{hub['rps']:,.0f}", f"{hub['p99_ms']:.1f}"] if hub else ["-"] * 2
            user, hub = slowest(runs, ours, size, names)
            user0, hub0 = slowest(runs, ours, sizes[0], names)
            row.append(f"{user['rps'] / user0['rps']:.2f}" if user and user0 else "-")
            row.append(f"{hub['rps'] / hub0['rps']:.2f}" if hub and hub0 else "-")
            row.append(f"{user['p99_ms'] / user0['p99_ms']:.2f}" if user and user0 else "-")
            if "chp" in systems and ours != "chp":
                chp_user, chp_hub = slowest(runs, "chp", size, names)
                row.append(f"{user['rps'] / chp_user['rps']:.2f}" if user and chp_user else "-")
                row.append(f"{hub['rps'] / chp_hub['rps']:.2f}" if hub and chp_hub else "-")
            rows.append(row)
    lines = text_table(rows)
    direct = document.get("direct")
    if direct:
        lines.append(
            f"backend alone (no proxy, CPU {LOAD_CPU} ceiling): {direct['rps']:,.0f} "
            f"req/s, p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms"
        )
    lines.append(
        "issue's targets at the largest N, every distribution: slowest user and Hub "
        ">= 0.8x ours at the smallest N and >= chp's at the same N; p99 <= 2x the "
        "smallest N's"
    )
    return "\n".join(lines)


def plot(path: Path, document: dict[str, Any]) -> str | None:
    """The slowest user's and the Hub's req/s per distribution at the largest N,
    each system side by side, the smallest N as a line. Returns why not, if not."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    runs = document["runs"]
    systems = document["meta"]["systems"]
    sizes = sorted({r["size"] for r in runs})
    distributions = list(dict.fromkeys(r.get("names", "sequential") for r in runs))
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), sharey=True)
    width = 0.8 / len(systems)
    for ax, which in ((axes[0], 0), (axes[1], 1)):
        for k, system in enumerate(systems):
            xs, ys, small = [], [], []
            for i, names in enumerate(distributions):
                run = slowest(runs, system, sizes[-1], names)[which]
                base = slowest(runs, system, sizes[0], names)[which]
                if run:
                    xs.append(i + (k - (len(systems) - 1) / 2) * width)
                    ys.append(run["rps"])
                    small.append(base["rps"] if base else None)
            bars = ax.bar(xs, ys, width, label=f"{system}, {sizes[-1]:,} routes")
            for x, y in zip(xs, small):
                if y:
                    ax.plot([x - width / 2, x + width / 2], [y, y], color="black", lw=1.5)
            bars.set_label(f"{system}, {sizes[-1]:,} routes (line: {sizes[0]:,})")
        ax.set_xticks(range(len(distributions)), distributions)
        ax.set_title(("slowest probed user" if which == 0 else "Hub's catch-all") + " [req/s]", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    connections = document["meta"]["connections"]
    routes = " (subdomains: host routes)" if document["meta"].get("subdomains") else ""
    fig.suptitle(
        f"Data plane by user-name distribution{routes}: proxy on 1 core, wrk -c{connections} + node "
        "backend on the other"
    )
    save(fig, path, rect=(0, 0, 1, 0.93))
    return None


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("dataplane", __doc__)
    p.add_argument("--sizes", default="10,1000,5000,10000", help="user route counts N")
    p.add_argument(
        "--systems",
        default="ours-file,chp",
        help="ours-file, with a +variant or not (+activity: metrics on; +flat: no route tree; "
        "+depthN: N tree levels; +shardsK; ...), and/or chp",
    )
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run (<= 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of unrecorded wrk first")
    p.add_argument("--repeat", type=int, default=1, help="wrk runs per cell; the median is kept")
    p.add_argument("--connections", type=int, default=50, help="wrk -c")
    p.add_argument(
        "--max-busy",
        type=float,
        default=None,
        help="before each cell, wait (<= 15 min) until both CPUs are at most this "
        "busy (0-1, e.g. 0.25) with the proxy idle: for a shared machine",
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=300,
        help="longest wait for --max-busy, seconds; then measure anyway",
    )
    p.add_argument("--threads", type=int, default=1, help="wrk -t")
    p.add_argument(
        "--names",
        default="random,sequential,student,prefixed,ldap,realistic",
        help="name distributions, comma-separated: " + ", ".join(NAMES),
    )
    p.add_argument(
        "--subdomains",
        action="store_true",
        help="host routes, as JupyterHub adds with subdomain_host: <name>.hub.test/user/<name>/, "
        "requested with that Host (the Hub's catch-all with a host no route names)",
    )
    p.add_argument("--chp-command", default=str(systems.CHP_COMMAND), help="configurable-http-proxy")
    p.add_argument("--setup", action="store_true", help="npm install CHP when missing")
    p.add_argument("--out", default=str(HERE / "results"), help="directory for JSON and PNG")
    p.add_argument("--from-json", metavar="DATAPLANE_JSON", help="only redraw table and plot")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    say = sayer(args.quiet)
    sizes, systems_ = cli.sizes(args.sizes), cli.items(args.systems)
    backend = NodeBackend("user", "hub").start()
    try:
        say("backend alone ...")
        direct = await asyncio.to_thread(measure, backend.url("user") + "/", "user", args)
        say(f"  backend alone {direct['rps']:8.0f} req/s  p99 {direct['p99_ms']:.2f} ms")
        runs: list[dict[str, Any]] = []
        for names in cli.items(args.names):
            for size in sizes:
                for system in systems_:
                    runs += await run_system(system, size, backend, args, names)
    finally:
        backend.stop()
    return {
        "meta": {
            "sizes": sizes,
            "systems": systems_,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "connections": args.connections,
            "threads": args.threads,
            "proxy_cpu": PROXY_CPU,
            "load_cpu": LOAD_CPU,
            "names": args.names,
            "subdomains": args.subdomains,
            "hub_path": HUB_PATH,
            **machine_info("traefik", "node"),
        },
        "direct": direct,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        document = json.loads(Path(args.from_json).read_text())
        out = Path(args.from_json).parent
    else:
        require_load_tools()
        args.duration = min(args.duration, 10.0)  # bounded loads on a shared machine
        systems.require_chp(cli.items(args.systems), args.chp_command, args.setup)
        cli.sigterm_as_interrupt()
        document = asyncio.run(amain(args))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "dataplane.json", document)
    why_not = plot(out / "dataplane.png", document)
    print()
    print(table(document))
    print(
        f"\nwrote {out / 'dataplane.json'}"
        + (f", {out / 'dataplane.png'}" if why_not is None else f" (no plot: {why_not})")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
