"""Benchmark traefik-proxy against upstream jupyterhub-traefik-proxy and CHP.

    .venv/bin/python -m benchmarks.bench --sizes 100,1000 \\
        --backends file,etcd,redis --others upstream,chp --out benchmarks/results/

Every (system, size) runs in its own ``python -m benchmarks.worker`` process
(see that module for the phases measured), with a fresh etcd/valkey server
when the system needs one. Prints a side-by-side table and writes
``bench.json``, ``bench.csv`` and ``bench.png`` into ``--out``.

The systems compared live outside the main venv: upstream 2.1.0 registers
the same ``traefik_file`` entry point as we do, so it gets its own venv
(``benchmarks/.venv-upstream``), and CHP is an npm package
(``benchmarks/.chp``). ``--setup`` creates both when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .harness import cli
from .harness.output import sayer, write_json
from .harness.procs import machine_info
from .harness.stores import StoreServer, missing_binary, store_kind
from .harness.systems import (
    CHP_COMMAND,
    CHP_PREFIX,
    MODULES,
    UPSTREAM_PYTHON,
    UPSTREAM_REQUIREMENTS,
    UPSTREAM_VENV,
    setup_chp,
    setup_upstream,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("bench", __doc__)
    p.add_argument(
        "--sizes", default="100,1000", help="route counts N, comma-separated (full run: 100,1000,5000,10000)"
    )
    p.add_argument(
        "--backends", default="file,etcd,redis", help="our backends (and upstream's): file, etcd, redis"
    )
    p.add_argument(
        "--others",
        default="upstream,chp",
        help="systems to compare against: upstream, chp, floor (Traefik alone), or none",
    )
    p.add_argument(
        "--samples", type=int, default=30, help="sequential add_route/delete_route calls timed per size"
    )
    p.add_argument("--get-all-repeats", type=int, default=5, help="get_all_routes calls timed per size")
    p.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds one (system, size) run may take before it is stopped",
    )
    p.add_argument(
        "--upstream-max-size",
        type=int,
        default=1000,
        help="skip upstream above this N (its add_route costs ~1 s at 10,000 routes)",
    )
    p.add_argument(
        "--upstream-python",
        default=str(UPSTREAM_PYTHON),
        help="python of the venv with jupyterhub-traefik-proxy 2.1.0",
    )
    p.add_argument("--chp-command", default=str(CHP_COMMAND), help="configurable-http-proxy executable")
    p.add_argument(
        "--setup", action="store_true", help="create the upstream venv and install CHP with npm when missing"
    )
    p.add_argument(
        "--trait",
        action="append",
        default=[],
        metavar="SYSTEM:NAME=VALUE",
        help="set a traitlet on one system's proxy (VALUE is JSON, else a string), "
        "e.g. ours-file:traefik_poll_interval=0.05; SYSTEM '*' means all",
    )
    p.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also run our backends from another checkout of this repository (e.g. a "
        "git worktree of an earlier commit) as before-<backend>, in the same run",
    )
    p.add_argument("--out", default=str(HERE / "results"), help="directory for JSON, CSV, PNG")
    p.add_argument(
        "--from-json",
        metavar="BENCH_JSON",
        help="measure nothing: print the table and redraw the plot of an earlier run",
    )
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p.parse_args(argv)


def systems_for(args: argparse.Namespace) -> list[str]:
    backends = cli.items(args.backends)
    others = cli.items(args.others)
    unknown = set(backends) - {"file", "etcd", "redis"}
    if unknown:
        raise SystemExit(f"--backends: unknown {sorted(unknown)}; use file, etcd, redis")
    unknown = set(others) - {"upstream", "chp", "floor"}
    if unknown:
        raise SystemExit(f"--others: unknown {sorted(unknown)}; use upstream, chp, floor or none")
    systems = [f"ours-{b}" for b in backends]
    if args.baseline:
        systems += [f"before-{b}" for b in backends]
    if "upstream" in others:
        systems += [f"upstream-{b}" for b in backends]
    if "chp" in others:
        systems.append("chp")
    if "floor" in others:
        # Traefik's own write-to-visible time, no proxy around it, same config
        systems += [f"floor-{b}" for b in backends]
    return systems


# ------------------------------------------------------------------ setup


def python_for(system: str, args: argparse.Namespace) -> str:
    return args.upstream_python if system.startswith("upstream-") else sys.executable


def env_for(system: str, args: argparse.Namespace) -> dict[str, str]:
    """The worker's environment: a before-* system imports traefik_proxy from --baseline."""
    env = dict(os.environ)
    if system.startswith("before-"):
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(args.baseline).resolve()), env.get("PYTHONPATH")])
        )
    return env


def unavailable(system: str, args: argparse.Namespace) -> str | None:
    """Why a system cannot run here, or None."""
    python = python_for(system, args)
    if system.startswith("upstream-") and not Path(python).exists():
        return (
            f"no upstream venv at {python}; run with --setup, or: python -m venv "
            f"{UPSTREAM_VENV} && {UPSTREAM_VENV}/bin/pip install "
            + " ".join(f"'{r}'" for r in UPSTREAM_REQUIREMENTS)
        )
    if system == "chp" and not os.access(args.chp_command, os.X_OK):
        return (
            f"configurable-http-proxy not found at {args.chp_command}; run with --setup, "
            f"or: npm install --prefix {CHP_PREFIX} configurable-http-proxy"
        )
    check = subprocess.run(
        [python, "-c", f"import {MODULES[system]}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(system, args),
    )
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return f"import {MODULES[system]} failed: {last}"
    kind = store_kind(system)
    return missing_binary(kind) if kind else None


# ------------------------------------------------------------------ running


def _kill_orphans(pids: list[int]) -> None:
    """Kill server processes a killed worker left behind (only traefik/node ones)."""
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"traefik" in cmdline or b"node" in cmdline or b"configurable-http-proxy" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_one(system: str, size: int, args: argparse.Namespace, out: Path, log: Any) -> dict[str, Any]:
    result_file = out / "runs" / f"{system}-{size}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)
    spec: dict[str, Any] = {
        "system": system,
        "size": size,
        "samples": args.samples,
        "get_all_repeats": args.get_all_repeats,
        "out": str(result_file),
        "chp_command": str(Path(args.chp_command).resolve()),
        "traits": cli.traits(args.trait, system),
    }
    kind = store_kind(system)
    store = StoreServer(kind).start() if kind else None
    started = time.monotonic()
    try:
        if store:
            spec["store_url"] = store.url
        worker = subprocess.Popen(
            [python_for(system, args), "-m", "benchmarks.worker", json.dumps(spec)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env_for(system, args),
        )
        timed_out = False
        try:
            worker.wait(args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            worker.send_signal(signal.SIGTERM)  # the worker stops its proxy and reports
            try:
                worker.wait(45)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            result = {
                "system": system,
                "size": size,
                "metrics": {},
                "status": "crashed",
                "error": f"worker exited with {worker.returncode} without a result "
                f"(see {out / 'worker.log'})",
            }
        if timed_out:
            _kill_orphans(result.get("server_pids", []))
            result["status"] = "timeout"
            result["error"] = (
                f"over --timeout={args.timeout:.0f}s during {result.get('phase')}; later phases not measured"
            )
        elif result.get("status") == "running":
            _kill_orphans(result.get("server_pids", []))
            result["status"] = "crashed"
            result["error"] = f"worker died (exit {worker.returncode}) during {result.get('phase')}"
    finally:
        if store:
            store.stop()
    result["wall_s"] = time.monotonic() - started
    return result


def rerender(path: Path) -> int:
    document = json.loads(path.read_text())
    meta, runs = document["meta"], document["runs"]
    why_not = report.plot(path.with_suffix(".png"), runs, meta["systems"])
    print(report.table(runs, meta["systems"], meta["sizes"], document.get("skipped", {})))
    print(f"\nplot: {path.with_suffix('.png') if why_not is None else why_not}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return rerender(Path(args.from_json))
    sizes = cli.sizes(args.sizes)
    systems = systems_for(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = sayer(args.quiet)

    if args.setup:
        if any(s.startswith("upstream-") for s in systems):
            try:
                setup_upstream(Path(args.upstream_python))
            except (OSError, subprocess.CalledProcessError) as e:
                say(f"upstream setup failed: {e}")
        if "chp" in systems:
            try:
                setup_chp()
            except (OSError, subprocess.CalledProcessError) as e:
                say(f"CHP setup failed: {e}")

    skipped: dict[str, str] = {}
    runnable = []
    for system in systems:
        reason = unavailable(system, args)
        if reason:
            skipped[system] = reason
            say(f"skip {system}: {reason}")
        else:
            runnable.append(system)

    runs: list[dict[str, Any]] = []
    begun = time.monotonic()
    with open(out / "worker.log", "w") as log:
        for size in sizes:
            for system in runnable:
                if system.startswith("upstream-") and size > args.upstream_max_size:
                    skipped[f"{system} N={size}"] = (
                        f"above --upstream-max-size={args.upstream_max_size} "
                        "(upstream's sequential per-route writes take too long)"
                    )
                    continue
                say(f"[{time.monotonic() - begun:6.0f}s] {system} N={size} ...")
                log.write(f"===== {system} N={size}\n")
                log.flush()
                result = run_one(system, size, args, out, log)
                runs.append(result)
                m = result.get("metrics", {})
                say(
                    f"         {result.get('status')} in {result['wall_s']:.0f}s: "
                    f"add p50 {report._num(report._sub('add_route', 'p50_ms')(m))} ms, "
                    f"bulk add {report._num(m.get('bulk_add_s'))} s"
                    + (f" ({result.get('error')})" if result.get("status") != "ok" else "")
                )

    document = {
        "meta": {
            "sizes": sizes,
            "systems": systems,
            "samples": args.samples,
            "get_all_repeats": args.get_all_repeats,
            "traits": args.trait,
            **machine_info(),
            "targets": "issue: add_route <=60 ms file, <=100 ms KV; 1000 concurrent add <=2 s; "
            "5000 <=8 s; get_all_routes at 10000 <=50 ms file, <=300 ms KV; "
            "delete_route <=20 ms",
        },
        "skipped": skipped,
        "runs": runs,
    }
    write_json(out / "bench.json", document)
    report.write_csv(out / "bench.csv", runs)
    why_not = report.plot(out / "bench.png", runs, systems)
    print()
    print(report.table(runs, systems, sizes, skipped))
    print()
    print(
        f"wrote {out / 'bench.json'}, {out / 'bench.csv'}"
        + (f", {out / 'bench.png'}" if why_not is None else f" (no plot: {why_not})")
    )
    return 0 if runs and all(r.get("status") == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
