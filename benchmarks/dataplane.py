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
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .systems import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BACKEND_JS = HERE / "backend.js"
WRK_LUA = HERE / "wrk_report.lua"
CHP_COMMAND = HERE / ".chp" / "node_modules" / ".bin" / "configurable-http-proxy"
PROXY_CPU, LOAD_CPU = 0, 1
#: the measured user (names "sequential"): shorter than every filler name, so
#: lowest priority of them, and in the fillers' bucket of the route tree
LAST_USER = "u0"
HUB_PATH = "/hub/home"


# ------------------------------------------------------------------ processes


def require_tools() -> None:
    missing = [t for t in ("wrk", "node", "taskset") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y wrk nodejs util-linux")
    if os.cpu_count() is None or os.cpu_count() < 2:
        raise SystemExit("needs 2 CPUs: one for the proxy, one for wrk and the backend")


@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run this process on one CPU for a while: children started now inherit it.

    Go sizes GOMAXPROCS from the affinity it starts with, so traefik started
    inside sees one CPU, as a traefik under ``taskset -c`` would.
    """
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Backend:
    """``backend.js`` on CPU 1: one port per name, each answering with its name."""

    def __init__(self, *names: str) -> None:
        self.ports = {name: free_port() for name in names}
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> Backend:
        args = [f"{name}={port}" for name, port in self.ports.items()]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(LOAD_CPU), "node", str(BACKEND_JS), *args],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        OWN_PIDS.add(self.process.pid)
        for name in self.ports:
            wait_for_body(self.url(name) + "/", name, timeout=10)
        return self

    def stop(self) -> None:
        if self.process is not None:
            OWN_PIDS.discard(self.process.pid)
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def get_body(url: str, timeout: float = 5.0, host: str | None = None) -> str | None:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, headers={"Host": host} if host else None)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def wait_for_body(url: str, body: str, timeout: float, host: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_body(url, 1.0, host) == body:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer {body!r} within {timeout:.0f}s")


#: long-lived processes of this benchmark (the backend), not counted as others' load
OWN_PIDS: set[int] = set()


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])  # guest time is already inside user
    return (total - values[3] - values[4]) / hz, total / hz


def own_cpu(pids: set[int]) -> float:
    """CPU seconds used so far by this process, its waited-for children and `pids`."""
    import resource

    own = sum(cpu_seconds(p) or 0.0 for p in pids)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return own


def busy_fraction(seconds: float = 2.0) -> float:
    """Share of all CPUs' time spent busy over the next `seconds`."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / max(1e-9, total1 - total0)


def wait_for_quiet(max_busy: float | None, timeout: float = 900) -> float:
    """Wait (up to `timeout`) until other processes leave the CPUs mostly idle.

    Returns the busy fraction last seen. None: do not wait.
    """
    if max_busy is None:
        return busy_fraction(0.5)
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_fraction()
        if busy <= max_busy or time.monotonic() > deadline:
            return busy
        time.sleep(3)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process (all its threads) has used so far."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    duration: float,
    connections: int = 50,
    threads: int = 1,
    pid: int | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """One bounded wrk run on CPU 1; req/s, latency percentiles (ms), errors, load.

    With the proxy's pid, also its CPU time per request: unlike req/s, that
    hardly moves when other processes share the proxy's core, so it is the
    number to compare on a busy machine (capacity = 1 s / CPU per request).
    """
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pid)
    ours = OWN_PIDS | ({pid} if pid else set())
    machine_before, own_before = cpu_times(), own_cpu(ours)
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(LOAD_CPU),
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "-s",
            str(WRK_LUA),
            *(["-H", f"Host: {host}"] if host else []),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.split(" ", 1)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    cpu_after = cpu_seconds(pid)
    machine_after, own_after = cpu_times(), own_cpu(ours)
    # what other processes took of the two CPUs while wrk ran: the noise of this run
    total = machine_after[1] - machine_before[1]
    others = (machine_after[0] - machine_before[0] - (own_after - own_before)) / max(1e-9, total)
    cpu_us = (
        1e6 * (cpu_after - cpu_before) / raw["requests"]
        if cpu_before is not None and cpu_after is not None and raw["requests"]
        else None
    )
    return {
        "proxy_cpu_us_per_req": cpu_us,
        "capacity_rps": 1e6 / cpu_us if cpu_us else None,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "requests": raw["requests"],
        "errors": errors,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "others_cpu_share": max(0.0, others),
    }


def measure(url: str, body: str, args: argparse.Namespace, pid: int | None = None) -> dict[str, Any]:
    """Check the URL reaches the expected backend, warm up, then the median of --repeat runs."""
    wait_for_body(url, body, timeout=30)
    busy = wait_for_quiet(args.max_busy, args.quiet_timeout)
    if args.warmup > 0:
        wrk(url, args.warmup, args.connections, args.threads)
    runs = [wrk(url, args.duration, args.connections, args.threads, pid) for _ in range(args.repeat)]
    # the median run by req/s: the machine is shared, single runs are noisy
    runs.sort(key=lambda r: r["rps"])
    result = dict(runs[len(runs) // 2])
    result["rps_all"] = [round(r["rps"]) for r in runs]
    result["busy_before"] = busy
    return result


# ------------------------------------------------------------------ proxies


def user_routes(size: int, names: str = "realistic") -> tuple[list[str], str]:
    """(N user routespecs, the measured user's name); the measured route sorts last in
    Traefik's order, and in the route tree it is in the bucket holding the most routes.

    ``sequential``: u00001, u00002, ... all share their first two characters, so
    the tree's two levels hold them in one bucket (the tree's worst case).
    ``realistic``: 6-10 characters with English-like initials
    (:func:`benchmarks.experiments.shapes.user_names`); the measured user is the
    two-character name of the largest two-character group.
    """
    if names == "sequential":
        return [f"/user/u{i:05d}/" for i in range(1, size)] + [f"/user/{LAST_USER}/"], LAST_USER
    from .experiments.shapes import user_names

    fillers = user_names(size - 1) if size > 1 else []
    groups: dict[str, int] = {}
    for name in fillers:
        groups[name[:2]] = groups.get(name[:2], 0) + 1
    measured = max(groups, key=lambda g: (groups[g], g)) if groups else "zz"
    return [f"/user/{n}/" for n in fillers] + [f"/user/{measured}/"], measured


#: name distributions of ``--names``: name of the i-th of N users (``rng``: seeded)
DISTRIBUTIONS = {
    "random": lambda i, rng: "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)),
    "sequential": lambda i, rng: f"u{i:05d}",
    "student": lambda i, rng: f"s2026{rng.randrange(100_000):05d}",
    "prefixed": lambda i, rng: "jupyter-" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)),
    "ldap": lambda i, rng: (
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=2)) + f"{rng.randrange(100_000):05d}"
    ),
}


def names_of(distribution: str, count: int) -> list[str]:
    """``count`` distinct user names of a distribution, in the order a Hub adds
    them (the first ``k`` of ``count`` + 1 are those of ``count``)."""
    import random

    rng = random.Random(2026)
    if distribution == "realistic":
        from .experiments.shapes import user_names

        users = user_names(count)
        rng.shuffle(users)
        return users
    found: dict[str, None] = {}
    while len(found) < count:
        found[DISTRIBUTIONS[distribution](len(found), rng)] = None
    return list(found)


def named_routes(size: int, names: str) -> tuple[list[str], dict[str, str]]:
    """(N user routespecs in the order they are added, {probe: user name}) for a
    distribution: the probes are the shortest name (the lowest priority among
    user routes; the first in sorted order of those), the last in sorted order,
    the first added and a random one."""
    import random

    users = names_of(names, size)
    rng = random.Random(2026)
    ordered = sorted(users)
    probes = {
        "shortest": min(users, key=lambda n: (len(n), n)),
        "last": ordered[-1],
        "first added": users[0],
        "random": rng.choice(users),
    }
    return [f"/user/{n}/" for n in users], probes


async def populated_proxy(
    system: str, size: int, backend: Backend, workdir: Path, args: argparse.Namespace, names: str
) -> Any:
    from . import systems

    # "ours-file+activity": the same proxy with route activity tracking on
    # (Traefik's Prometheus metrics), to measure what the metrics cost
    # "ours-file+flat": every route on the entrypoint (traefik_route_tree_depth = 0),
    # the layout before the route tree
    base, _, variant = system.partition("+")
    # "ours-file+depth4": the fixed route tree with 4 levels; "ours-file+fixed":
    # the fixed tree of 2 levels (traefik_route_tree_bucket_size = 0)
    traits = {
        "activity": {"traefik_track_activity": True},
        "flat": {"traefik_route_tree_depth": 0},
        "fixed": {"traefik_route_tree_bucket_size": 0},
    }.get(variant, {})
    if variant.startswith("depth"):
        traits = {
            "traefik_route_tree_depth": int(variant[len("depth") :]),
            "traefik_route_tree_bucket_size": 0,
        }
    spec = {"system": base, "size": size, "chp_command": str(args.chp_command), "traits": traits}
    made = systems.make(base, spec, workdir)
    with on_cpu(PROXY_CPU):
        await made.proxy.start()
    routes, made.probes = named_routes(size, names)
    started = time.monotonic()
    await made.proxy.add_route("/", backend.url("hub"), {"hub": True})
    await asyncio.gather(*(made.proxy.add_route(r, backend.url("user"), {}) for r in routes))
    made.setup_s = time.monotonic() - started
    made.server_pid = server_pid(made.proxy)
    made.server_rss_mb = rss_mb(made.server_pid)
    return made


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process (VmRSS), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, TypeError, ValueError):
        pass
    return None


def server_pid(proxy: Any) -> int | None:
    process = getattr(proxy, "traefik_process", None) or getattr(proxy, "proxy_process", None)
    return getattr(process, "pid", None)


async def run_system(
    system: str, size: int, backend: Backend, args: argparse.Namespace, names: str
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"dataplane-{system}-") as tmp:
        made = await populated_proxy(system, size, backend, Path(tmp), args, names)
        try:
            cpus = sorted(os.sched_getaffinity(made.server_pid)) if made.server_pid else None
            results = []
            probes = [(probe, f"/user/{user}/lab", "user") for probe, user in made.probes.items()]
            for kind, path, body in (*probes, ("hub", HUB_PATH, "hub")):
                result = await asyncio.to_thread(measure, made.public_url + path, body, args, made.server_pid)
                result.update(
                    system=system,
                    size=size,
                    names=names,
                    route=kind,
                    path=path,
                    setup_s=made.setup_s,
                    proxy_cpus=cpus,
                    server_rss_mb=made.server_rss_mb,
                )
                results.append(result)
                say(
                    args,
                    f"  {system:9} N={size:<6} {names:10} {kind:11} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                    f"cpu {result['proxy_cpu_us_per_req'] or 0:5.0f} us/req  "
                    f"load {result['loadavg_before']:.1f} others {result['others_cpu_share']:.2f}"
                    + (
                        f"  ERRORS {result['errors']} non-2xx {result['non2xx']}"
                        if result["errors"] or result["non2xx"]
                        else ""
                    ),
                )
            return results
        finally:
            stopped = made.proxy.stop()  # a coroutine for ours, None for JupyterHub's CHP class
            if asyncio.iscoroutine(stopped):
                await stopped


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


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
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
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
    fig.suptitle(
        f"Data plane by user-name distribution: proxy on 1 core, wrk -c{connections} + node "
        "backend on the other"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.dataplane",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="10,1000,5000,10000", help="user route counts N")
    p.add_argument(
        "--systems",
        default="ours-file,chp",
        help="ours-file, ours-file+activity (metrics on), ours-file+flat (no route "
        "tree), ours-file+depthN (N tree levels) and/or chp",
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
        help="name distributions, comma-separated: " + ", ".join([*DISTRIBUTIONS, "realistic"]),
    )
    p.add_argument("--chp-command", default=str(CHP_COMMAND), help="configurable-http-proxy")
    p.add_argument("--setup", action="store_true", help="npm install CHP when missing")
    p.add_argument("--out", default=str(HERE / "results"), help="directory for JSON and PNG")
    p.add_argument("--from-json", metavar="DATAPLANE_JSON", help="only redraw table and plot")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    backend = Backend("user", "hub").start()
    try:
        say(args, "backend alone ...")
        direct = await asyncio.to_thread(measure, backend.url("user") + "/", "user", args)
        say(args, f"  backend alone {direct['rps']:8.0f} req/s  p99 {direct['p99_ms']:.2f} ms")
        runs: list[dict[str, Any]] = []
        for names in [n.strip() for n in args.names.split(",") if n.strip()]:
            for size in sizes:
                for system in systems:
                    runs += await run_system(system, size, backend, args, names)
    finally:
        backend.stop()
    return {
        "meta": {
            "sizes": sizes,
            "systems": systems,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "connections": args.connections,
            "threads": args.threads,
            "proxy_cpu": PROXY_CPU,
            "load_cpu": LOAD_CPU,
            "names": args.names,
            "hub_path": HUB_PATH,
            "traefik": _version(["traefik", "version"]),
            "node": _version(["node", "-v"]),
            "python": sys.version.split()[0],
            "machine": platform.platform(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "direct": direct,
        "runs": runs,
    }


def _version(command: list[str]) -> str:
    exe = shutil.which(command[0]) or str(Path(sys.executable).parent / command[0])
    try:
        out = subprocess.run([exe, *command[1:]], capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    found = re.search(r"Version:\s*(\S+)", out.stdout)
    return found.group(1) if found else out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        document = json.loads(Path(args.from_json).read_text())
        out = Path(args.from_json).parent
    else:
        require_tools()
        args.duration = min(args.duration, 10.0)  # bounded loads on a shared machine
        if "chp" in args.systems and not os.access(args.chp_command, os.X_OK):
            if not args.setup:
                raise SystemExit(f"no CHP at {args.chp_command}: add --setup")
            from .bench import setup_chp

            setup_chp()
        document = asyncio.run(amain(args))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "dataplane.json").write_text(json.dumps(document, indent=1))
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
