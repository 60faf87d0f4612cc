"""Where Traefik's CPU goes when one route changes among N: CPU profiles of route changes.

    .venv/bin/python -m benchmarks.reload_profile --routes 1000,10000 --store file,etcd,redis
    .venv/bin/python -m benchmarks.reload_profile --read benchmarks/results/reload_profile/file-1000-p1.pb.gz

For each (store, N): a fresh store server (etcd / valkey on free ports, data
in a temporary directory) and our proxy class on it, which starts traefik
itself with its debug endpoints on (``api.debug`` in the static config, a
``PathPrefix(`/debug`)`` router to ``api@internal`` on the API entrypoint
behind the proxy's own basic auth, through the proxy's
``extra_static_config`` / ``extra_dynamic_config``). Then:

1. N user routes (``/user/<name>/``, the realistic names of
   :func:`benchmarks.harness.names.user_names`) plus the Hub's ``/``, by
   concurrent ``add_route``; then the proxy and its traefik start again on
   them (:func:`run` says why), and we wait until Traefik's CPU is quiet
   (:func:`benchmarks.harness.traefik.settle`);
2. two warm-up add/delete pairs estimate how long a change takes, which sizes
   the profile: ``--changes`` changes, room for slower ones, and a quiet
   second for what Traefik still does after the last;
3. ``--profiles`` times: a CPU profile (``/debug/pprof/profile?seconds=S``)
   while changes run one after another: ``add_route`` of a new user (it
   returns once Traefik serves the route: its wall time is the "time to
   visible"), then ``delete_route`` of it, waited for until Traefik's API no
   longer shows the router (``delete_route`` returns once the store is
   written; without the wait its reload would land in the next add's time);
   adds and deletes both count as changes;
4. each profile's samples go to categories by stack (:data:`benchmarks.pprof.CATEGORIES`:
   GC, TLS, API requests, decode, router build, other), divided by the
   changes made in it.

Prints per (store, N) the median over the profiles of Traefik's CPU ms per
change by category, their shares, the adds' time to visible (median, p90),
Traefik's CPU per change as ``/proc`` counts it (a cross-check of the
profiles' total), the top functions by cumulative time, and, with
``--count``, Traefik's config reloads per change. Writes
``<store>-<N>[-<traits>].json`` and each raw profile (``...-p<i>.pb.gz``, for
``go tool pprof`` or ``--read``) into ``--out``.

``--trait NAME=VALUE`` sets any traitlet of the proxy class (e.g.
``traefik_default_cert=False``, to compare); ``--pin-cpu`` starts traefik on
one CPU (GOMAXPROCS=1, as :mod:`benchmarks.dataplane` does). How long it
takes: a change costs Traefik one full reload, so the profile grows with N:
about a minute per store at 1,000 routes with the defaults; at 10,000 on
etcd or Redis each reload takes Traefik ~10 s of CPU, and the backlog of the
initial load minutes more: use ``--changes 4 --profiles 1`` there.

A profile holds everything Traefik did meanwhile, including what the
measurement makes it do: "API requests" is the polls until a route is live
or gone (each checks the basic auth's password hash), not a reload's cost. The
machine is shared: the 1-minute load average is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from . import pprof
from .harness import cli, systems
from .harness.names import NAMES, names_of, user_names
from .harness.output import markdown_table, percentile, sayer, write_json
from .harness.procs import PROXY_CPU, CpuMeter, local_environment
from .harness.stores import StoreServer
from .harness.traefik import metrics_static, metrics_url, reloads, settle, wait_for_routers
from .harness.traffic import ProbeBackend

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "reload_profile"
#: seconds left in the profile under which no new change starts: its reload
#: must end inside the profile
END_MARGIN_S = 0.5
WARMUP_PAIRS = 2
#: seconds of (nearly) idle Traefik that count as quiet
QUIET_S = 1.5


#: progress, on stderr: a 10,000-route run takes minutes
say = sayer(prefix="[reload_profile] ", stderr=True)


# ------------------------------------------------------------------ proxy


async def wait_quiet(proxy: Any, limit: float) -> float:
    """Seconds until Traefik's CPU was quiet; a warning if it never was
    within ``limit`` (a profile then holds an earlier backlog's reloads too)."""
    started = time.monotonic()
    took = await settle(proxy.traefik_process.pid, quiet=QUIET_S, limit=limit)
    if time.monotonic() - started - took < QUIET_S:  # settle gave up at its limit
        say(f"warning: traefik still busy after {limit:.0f} s (raise --settle-limit); "
            "the profile includes reloads of earlier changes")  # fmt: skip
    return took


def debug_config(proxy: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(static, dynamic) config serving Traefik's /debug/ (pprof) on the API
    entrypoint behind the basic auth the proxy writes for its API
    (:func:`traefik_proxy.core.api_fragment` names it ``<namespace>-traefik-api-auth``)."""
    api = f"{proxy.traefik_namespace}-traefik-api"
    router = {
        "rule": "PathPrefix(`/debug`)",
        "entryPoints": [proxy.traefik_api_entrypoint],
        "service": "api@internal",
        "middlewares": [f"{api}-auth"],
    }
    return {"api": {"debug": True}}, {"http": {"routers": {f"{api}-debug": router}}}


def make_proxy(kind: str, store_url: str, opts: argparse.Namespace, workdir: Path) -> tuple[Any, str]:
    """(our proxy class for ``kind``, its metrics URL or ""): configured as the
    other benchmarks do, plus ``--trait``s, the debug endpoints and, with
    ``--count``, Prometheus metrics on an entrypoint of their own."""
    from traefik_proxy.core import deep_merge

    proxy = systems.make(f"ours-{kind}", {"store_url": store_url, "traits": opts.traits}, workdir).proxy
    unknown = [name for name in opts.traits if not proxy.has_trait(name)]
    if unknown:
        # setattr on a HasTraits makes a plain attribute: a typo (or a trait
        # not landed yet) would silently measure the default
        raise SystemExit(f"{type(proxy).__name__} has no traitlet {', '.join(unknown)}")
    static, dynamic = debug_config(proxy)
    metrics = metrics_static() if opts.count else {}
    proxy.extra_static_config = deep_merge(deep_merge(proxy.extra_static_config, static), metrics)
    proxy.extra_dynamic_config = deep_merge(proxy.extra_dynamic_config, dynamic)
    return proxy, metrics_url(metrics)


# ------------------------------------------------------------------ changes


class Changes:
    """Route changes made one after another, each timed and its Traefik CPU
    (``/proc``) counted; ``made`` lists them."""

    def __init__(self, proxy: Any, api: httpx.AsyncClient, target: str, users: list[str]):
        self.proxy, self.api, self.target = proxy, api, target
        self.users = iter(users)  # never added before
        self.made: list[dict[str, Any]] = []

    async def pair(self, cpu: CpuMeter) -> None:
        """A new user's route added (until live), then deleted (until gone)."""
        from traefik_proxy.core import route_name

        user = next(self.users)
        routespec = f"/user/{user}/"
        router = f"/api/http/routers/{route_name(routespec, self.proxy.traefik_namespace)}@{self.proxy.provider_name}"

        cpu.mark()
        t = time.perf_counter()
        await self.proxy.add_route(routespec, self.target, {"user": user})
        self.made.append({"kind": "add", "user": user, "wall_s": round(time.perf_counter() - t, 4),
                          "traefik_cpu_s": cpu.since()["traefik_cpu_s"]})  # fmt: skip

        cpu.mark()
        t = time.perf_counter()
        await self.proxy.delete_route(routespec)
        wall = time.perf_counter() - t
        while (await self.api.get(router)).status_code != 404:
            if time.perf_counter() - t > self.proxy.check_route_timeout:
                raise TimeoutError(
                    f"Traefik still shows {routespec} {self.proxy.check_route_timeout} s after delete_route"
                )
            await asyncio.sleep(self.proxy.traefik_poll_interval)
        self.made.append({"kind": "delete", "user": user, "wall_s": round(wall, 4),
                          "gone_s": round(time.perf_counter() - t, 4),
                          "traefik_cpu_s": cpu.since()["traefik_cpu_s"]})  # fmt: skip


def profile_seconds(changes: int, per_change_s: float) -> int:
    """Profile length for ``changes`` changes of ``per_change_s`` each, with
    room for slower ones and a quiet second after the last (Go's profile
    handler takes whole seconds)."""
    return max(1, math.ceil(changes * per_change_s * 1.5 + 1.0 + END_MARGIN_S))


async def profiled_changes(
    changes: Changes, count: int, seconds: int, per_change_s: float
) -> tuple[bytes, list[dict], float]:
    """(raw profile, the changes made in it, Traefik's /proc CPU seconds over it).

    Add/delete pairs run until ``count`` changes are made, or until the next
    pair might not end well inside the profile.
    """
    traefik_pid = changes.proxy.traefik_process.pid
    whole = CpuMeter(traefik_pid, None)
    request = asyncio.create_task(
        changes.api.get("/debug/pprof/profile", params={"seconds": seconds}, timeout=seconds + 60)
    )
    started = time.monotonic()
    before = len(changes.made)
    per_change = CpuMeter(traefik_pid, None)
    try:
        await asyncio.sleep(0.1)  # the profile starts once traefik has the request
        while len(changes.made) - before < count:
            left = seconds - (time.monotonic() - started)
            if left < 2 * per_change_s * 1.5 + END_MARGIN_S:
                break
            await changes.pair(per_change)
    except BaseException:
        request.cancel()
        raise
    response = await request
    response.raise_for_status()
    return response.content, changes.made[before:], whole.since()["traefik_cpu_s"]


# ------------------------------------------------------------------ analysis


def analyse(profile: pprof.Profile, made: list[dict[str, Any]]) -> dict[str, Any]:
    """One profile: CPU ms by category, in all and per change."""
    categories = pprof.by_category(profile)
    n = max(len(made), 1)
    return {
        "changes": len(made),
        "duration_s": round(profile.duration_nanos / 1e9, 3),
        "total_ms": round(profile.total() / 1e6, 2),
        "categories_ms": {k: round(v / 1e6, 2) for k, v in categories.items()},
        "per_change_ms": {k: round(v / 1e6 / n, 3) for k, v in categories.items()},
    }


def merged(profiles: list[pprof.Profile]) -> pprof.Profile:
    """One profile holding every sample of ``profiles`` (all of one kind)."""
    out = pprof.Profile(sample_types=profiles[0].sample_types, period=profiles[0].period)
    for p in profiles:
        out.samples += p.samples
        out.duration_nanos += p.duration_nanos
    return out


def spread_ms(seconds: list[float]) -> dict[str, Any]:
    ms = lambda s: None if s is None else round(s * 1e3, 2)  # noqa: E731
    return {"n": len(seconds), "p50": ms(percentile(seconds, 50)), "p90": ms(percentile(seconds, 90))}


def summarise(profiles: list[dict[str, Any]], parsed: list[pprof.Profile]) -> dict[str, Any]:
    """Medians over the profiles per change, shares and top functions over all of them."""
    every = merged(parsed)
    total = every.total()
    made = [c for p in profiles for c in p["changes_made"]]
    per_change = {
        k: statistics.median(p["per_change_ms"][k] for p in profiles) for k in profiles[0]["per_change_ms"]
    }
    per_change["total"] = statistics.median(sum(p["per_change_ms"].values()) for p in profiles)
    summary = {
        "per_change_ms_median": per_change,
        "share": {k: round(v / (total or 1), 4) for k, v in pprof.by_category(every).items()},
        "visible_ms": spread_ms([c["wall_s"] for c in made if c["kind"] == "add"]),
        "gone_ms": spread_ms([c["gone_s"] for c in made if c["kind"] == "delete"]),
        "proc_cpu_ms_median": {
            kind: spread_ms([c["traefik_cpu_s"] for c in made if c["kind"] == kind])["p50"]
            for kind in ("add", "delete")
        },
        "profile_total_ms": round(total / 1e6, 1),
        "proc_total_ms": round(sum(p["proc_cpu_ms"] for p in profiles), 1),
        "top_functions": [
            {"function": f, "cum_ms": round(c / 1e6, 1), "flat_ms": round(fl / 1e6, 1)}
            for f, c, fl in pprof.top_functions(every, 15)
        ],
    }
    counted = [p["reloads_per_change"] for p in profiles if "reloads_per_change" in p]
    if counted:
        summary["reloads_per_change_median"] = statistics.median(counted)
    return summary


# ------------------------------------------------------------------ one run


async def profile_runs(
    kind: str, changes: Changes, opts: argparse.Namespace, name: str, metrics_url: str
) -> tuple[list[dict], list[pprof.Profile], int, float]:
    """(per-profile results, parsed profiles, profile seconds, warm-up seconds per change)."""
    t = time.perf_counter()
    for _ in range(WARMUP_PAIRS):
        await changes.pair(CpuMeter(None, None))
    per_change_s = (time.perf_counter() - t) / (2 * WARMUP_PAIRS)
    seconds = opts.seconds or profile_seconds(opts.changes, per_change_s)
    results, parsed = [], []
    for i in range(1, opts.profiles + 1):
        await wait_quiet(changes.proxy, opts.settle_limit)
        say(f"{kind}: profile {i}/{opts.profiles}: {opts.changes} changes in {seconds} s")
        reloads_before = await reloads(metrics_url)
        raw, made, traefik_cpu_s = await profiled_changes(changes, opts.changes, seconds, per_change_s)
        reloads_after = await reloads(metrics_url)
        raw_path = opts.out / f"{name}-p{i}.pb.gz"
        raw_path.write_bytes(raw)
        parsed.append(pprof.parse(raw))
        result = {
            **analyse(parsed[-1], made),
            "raw": raw_path.name,
            "proc_cpu_ms": round(traefik_cpu_s * 1e3, 1),
        }
        if reloads_before is not None and reloads_after is not None:
            result["reloads_per_change"] = round((reloads_after - reloads_before) / max(len(made), 1), 2)
        results.append({**result, "changes_made": made})
        if len(made) < opts.changes:
            say(f"{kind}: only {len(made)} of {opts.changes} changes fit in the {seconds} s profile")
    return results, parsed, seconds, per_change_s


async def started_proxy(
    kind: str, store_url: str, opts: argparse.Namespace, workdir: Path, stack: contextlib.AsyncExitStack
) -> tuple[Any, str]:
    """A started proxy (stopped when ``stack`` closes) and its metrics URL."""
    proxy, metrics = make_proxy(kind, store_url, opts, workdir)
    await stack.enter_async_context(systems.running(proxy, PROXY_CPU if opts.pin_cpu else None))
    return proxy, metrics


async def run(kind: str, n: int, opts: argparse.Namespace, backend: ProbeBackend) -> dict[str, Any]:
    """One (store, N): a fresh store, N routes, then the profiles.

    The routes are loaded through one proxy, then a second proxy (and
    traefik) starts on the same file or store: its traefik reads the N routes
    at start. The first one's may still be working through the load: a KV
    provider re-reads its whole prefix for every transaction (hundreds, for
    10,000 routes), each taking it seconds at that size, long after the last
    route is live.
    """
    name = run_name(kind, n, opts.traits, opts.names)
    result: dict[str, Any] = {"store": kind, "routes": n, "names": opts.names, "traits": opts.traits, "pin_cpu": opts.pin_cpu,
                              "load_start": os.getloadavg()[0]}  # fmt: skip
    # the same generator goes on: new users like the loaded ones
    pairs = WARMUP_PAIRS + opts.profiles * opts.changes // 2
    if opts.names == "realistic":
        loaded = user_names(n)
        fresh = [u for u in user_names(n + pairs) if u not in set(loaded)]
    else:
        everyone = names_of(opts.names, n + pairs)
        loaded, fresh = everyone[:n], everyone[n:]
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"reload-profile-{kind}-")))
        store_url = ""
        if kind != "file":
            say(f"{kind}: starting the store")
            store_url = stack.enter_context(StoreServer(kind)).url
        async with contextlib.AsyncExitStack() as loading:
            proxy, _ = await started_proxy(kind, store_url, opts, workdir, loading)
            say(f"{kind}: loading {n:,} routes")
            routes = [f"/user/{u}/" for u in loaded]
            load_s = await systems.load_routes(proxy, routes, backend.url, hub=backend.url, user_data=True)
            result["load_s"] = round(load_s, 2)
        say(f"{kind}: loaded in {result['load_s']} s; starting traefik again on them")
        t = time.perf_counter()
        proxy, metrics = await started_proxy(kind, store_url, opts, workdir, stack)
        await wait_for_routers(proxy.client, n, proxy.traefik_process)
        result["restart_s"] = round(time.perf_counter() - t, 2)
        result["settle_s"] = round(await wait_quiet(proxy, opts.settle_limit), 1)
        say(
            f"{kind}: {n:,} routes served {result['restart_s']} s after start; quiet after {result['settle_s']} s more"
        )
        api = httpx.AsyncClient(
            base_url=proxy.traefik_api_url, auth=(proxy.traefik_api_username, proxy.traefik_api_password)
        )
        stack.push_async_callback(api.aclose)
        changes = Changes(proxy, api, backend.url, fresh)
        profiles, parsed, seconds, per_change_s = await profile_runs(kind, changes, opts, name, metrics)
        result.update(warmup_change_s=round(per_change_s, 4), profile_seconds=seconds, profiles=profiles)
        result["summary"] = summarise(profiles, parsed)
    result["load_end"] = os.getloadavg()[0]
    return result


def run_name(kind: str, n: int, traits: dict[str, Any], names: str = "realistic") -> str:
    """File name stem: the cell, and the traits and names that make it differ from the default."""
    extra = [] if names == "realistic" else [names]
    parts = [kind, str(n), *extra, *(f"{k}={v}" for k, v in sorted(traits.items()))]
    return "-".join(parts).replace("/", "_")


# ------------------------------------------------------------------ output


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def category_table(per_change: dict[str, float], share: dict[str, float], header: str) -> list[str]:
    rows = [[name, f"{ms:.1f}", f"{share.get(name, 0) * 100:.1f}%"] for name, ms in per_change.items()
            if name != "total"]  # fmt: skip
    rows.append(["total", f"{per_change['total']:.1f}", "100%"])
    return markdown_table(["category", header, "share"], rows, "lrr")


def function_table(top: list[dict[str, Any]], total_ms: float) -> list[str]:
    rows = [[f"{f['cum_ms']:.0f}", f"{f['cum_ms'] / (total_ms or 1) * 100:.1f}%", f"{f['flat_ms']:.0f}",
             f"`{f['function']}`"] for f in top]  # fmt: skip
    return markdown_table(["cum ms", "cum %", "flat ms", "function"], rows, "rrrl")


def report(result: dict[str, Any]) -> str:
    """Markdown for one (store, N)."""
    s = result["summary"]
    made = [p["changes"] for p in result["profiles"]]
    traits = f", traits {result['traits']}" if result["traits"] else ""
    reloads_line = []
    if "reloads_per_change_median" in s:
        reloads_line = [f"Traefik config reloads per change: median {s['reloads_per_change_median']}"]
    return "\n".join([
        f"## {result['store']}, {result['routes']:,} routes{traits}",
        "",
        f"loaded in {result['load_s']} s; {plural(len(made), 'profile')} of {result['profile_seconds']} s with "
        f"{made} changes (add, delete, add, ...); load average {result['load_start']:.1f} -> {result['load_end']:.1f}",
        "",
        *category_table(s["per_change_ms_median"], s["share"], f"Traefik CPU ms per change (median of {plural(len(made), 'profile')})"),
        "",
        f"time to visible (add_route until Traefik serves the route): median {s['visible_ms']['p50']} ms, "
        f"p90 {s['visible_ms']['p90']} ms ({s['visible_ms']['n']} adds)",
        f"time to gone (delete_route until Traefik's API no longer shows it): median {s['gone_ms']['p50']} ms",
        f"Traefik CPU per change as /proc counts it: median {s['proc_cpu_ms_median']['add']} ms per add, "
        f"{s['proc_cpu_ms_median']['delete']} ms per delete (10 ms ticks); over the profiles "
        f"{s['proc_total_ms']:.0f} ms, their samples {s['profile_total_ms']:.0f} ms",
        *reloads_line,
        "",
        "top functions by cumulative time (all profiles):",
        "",
        *function_table(s["top_functions"], s["profile_total_ms"]),
    ])  # fmt: skip


def overview(results: list[dict[str, Any]]) -> str:
    """One row per (store, N): CPU ms per change by category, time to visible."""
    names = list(results[0]["summary"]["per_change_ms_median"])
    rows = []
    for r in results:
        s = r["summary"]
        cells = [f"{s['per_change_ms_median'][k]:.1f}" for k in names]
        rows.append([r["store"], f"{r['routes']:,}", *cells, s["visible_ms"]["p50"], s["visible_ms"]["p90"]])
    header = ["store", "N", *names, "visible p50", "visible p90"]
    return "\n".join(
        [
            "CPU ms of Traefik per change, by category (median over profiles); time to visible in ms",
            "",
            *markdown_table(header, rows, "lr" + "r" * (len(names) + 2)),
        ]
    )


def read_report(path: Path) -> str:
    """The categories and top functions of one saved profile."""
    profile = pprof.parse(path.read_bytes())
    total = profile.total()
    categories = pprof.by_category(profile)
    ms = {k: v / 1e6 for k, v in categories.items()} | {"total": total / 1e6}
    share = {k: v / (total or 1) for k, v in categories.items()}
    top = [
        {"function": f, "cum_ms": c / 1e6, "flat_ms": fl / 1e6}
        for f, c, fl in pprof.top_functions(profile, 15)
    ]
    return "\n".join([
        f"{path}: {profile.duration_nanos / 1e9:.1f} s profile, {len(profile.samples)} stacks, {total / 1e6:.0f} ms CPU",
        "", *category_table(ms, share, "CPU ms"), "", *function_table(top, total / 1e6),
    ])  # fmt: skip


# ------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("reload_profile", __doc__)
    p.add_argument("--routes", default="1000", help="route counts N, comma-separated (e.g. 100,1000,10000)")
    p.add_argument("--store", default="file", help="file, etcd, redis; comma-separated")
    p.add_argument(
        "--names",
        default="realistic",
        choices=NAMES,
        help="user names (benchmarks.harness.names' distributions)",
    )
    p.add_argument(
        "--changes",
        type=int,
        default=20,
        help="changes per profile; adds and deletes alternate (rounded up to even)",
    )
    p.add_argument(
        "--profiles", type=int, default=3, help="profiles per (store, N); the table has their medians"
    )
    p.add_argument(
        "--seconds", type=int, default=0, help="profile length (default: from the warm-up changes)"
    )
    p.add_argument("--settle-limit", type=float, default=900,
                   help="seconds to wait at most for traefik to be quiet after loading N routes")  # fmt: skip
    p.add_argument("--trait", action="append", default=[], metavar="NAME=VALUE",
                   help="traitlet of the proxy, e.g. traefik_default_cert=False (JSON or Python literal)")  # fmt: skip
    p.add_argument("--count", action="store_true",
                   help="count Traefik's config reloads (adds Prometheus metrics to Traefik: profile without)")  # fmt: skip
    p.add_argument(
        "--pin-cpu", action="store_true", help=f"start traefik on CPU {PROXY_CPU} alone (GOMAXPROCS=1)"
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="directory for the JSON and the raw profiles"
    )
    p.add_argument(
        "--read", type=Path, metavar="FILE.pb.gz", help="only print the categories of a saved profile"
    )
    opts = p.parse_args(argv)
    opts.traits = cli.traits(opts.trait)
    opts.changes += opts.changes % 2  # whole add/delete pairs
    return opts


async def amain(opts: argparse.Namespace) -> list[dict[str, Any]]:
    opts.out.mkdir(parents=True, exist_ok=True)
    backend = await ProbeBackend().start()
    results = []
    try:
        for n in [int(s) for s in cli.items(opts.routes)]:
            for kind in cli.items(opts.store):
                result = await run(kind, n, opts, backend)
                path = opts.out / f"{run_name(kind, n, opts.traits, opts.names)}.json"
                write_json(path, result)
                print(report(result) + "\n", flush=True)
                say(f"wrote {path}")
                results.append(result)
    finally:
        await backend.stop()
    if len(results) > 1:
        print(overview(results), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.read:
        print(read_report(opts.read))
        return 0
    local_environment()
    asyncio.run(amain(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
