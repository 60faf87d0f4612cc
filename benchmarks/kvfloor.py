"""The floor under add_route for the key-value providers, beside our proxy.

``python -m benchmarks.kvfloor`` measures, for etcd and Redis (valkey) at each
size N, in one run:

* ``floor-proxy``: Traefik alone reading N routes that were written straight
  into the store before it started, in the key layout our proxy wrote when
  the scale issue was filed (6 keys: rule, service, priority, entryPoints/0,
  server url, passHostHeader). Then sequential single-route adds, each one
  transaction (etcd txn / Redis MULTI+MSET) written directly, timed until
  ``/api/http/routers/<name>`` and ``/api/http/services/<name>`` (polled every
  ``--poll`` seconds) show the route live;
* ``floor-min``: the same with the smallest layout that still keeps routes off
  the API entrypoint: the public entrypoint is ``asDefault`` and a route is 4
  keys (rule, service, priority, server url);
* ``ours``: TraefikEtcdProxy / TraefikRedisProxy through the JupyterHub Proxy
  API, as :mod:`benchmarks.worker` drives it: N concurrent ``add_route`` (the
  "bulk" number), then sequential ``add_route`` until it returns.

``--bulk`` also times Traefik alone taking N new routes at once (written in as
few transactions as the store allows), the floor of N concurrent adds.

With ``--count``, each measurement also reports what the store and Traefik
did: how many transactions were written, how many full reads of the prefix
Traefik made (etcd Range calls; Redis MGET calls, one per full SCAN+MGET
listing), how many watch events etcd sent, and Traefik's configuration
reloads (its Prometheus counter ``traefik_config_reloads_total``, served on
an extra entrypoint). Counting adds Prometheus to Traefik: time without it.

Every store and Traefik is fresh per (system, store, N): one system's keys or
event backlog never slows another's. The 1-minute load average is recorded:
the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.servers import find_binary, free_port, stop_process

from .harness import cli, systems
from .harness.output import append_jsonl, duration, markdown_table, read_jsonl
from .harness.procs import CpuMeter, local_environment
from .harness.stores import ETCD_MAX_TXN_OPS, StoreServer, counter_delta
from .harness.traefik import metrics_static, metrics_url, reloads, settle, wait_for_routers
from .harness.traffic import ProbeBackend, probe

NAMESPACE = "jupyterhub"
ENTRYPOINT = "web"
API_ENTRYPOINT = "auth_api"
#: a hash key under Traefik's root key: Traefik's listing skips it (MGET
#: answers nil for a hash), its HINCRBY is the batch's one keyspace event
TRIGGER_KEY = "traefik.trigger"


# ------------------------------------------------------------------ layouts


def route_keys(layout: str, root: str, routespec: str, target: str) -> dict[str, str]:
    """The keys Traefik needs for one route, under ``root``, every route on
    the public entrypoint (no route tree).

    ``proxy`` is the 6 keys our proxy wrote per route when the scale issue was
    filed; ``min`` is the smallest layout that keeps routes off the API
    entrypoint: rule, service, priority and server url, the public
    entrypoint being ``asDefault``. (Our proxy now writes 4 keys per route
    too: rule, service, ``parentRefs/0`` and server url, in the route tree.)
    """
    from traefik_proxy import core

    route = core.make_route(routespec, target, {})
    settings = core.Settings(entrypoint=ENTRYPOINT, namespace=NAMESPACE)
    # rule, service, priority, entryPoints/0, server url
    keys = core.flatten(core.route_fragment(route, settings), "/", root)
    if layout == "proxy":
        name = core.route_name(routespec, NAMESPACE)
        return {**keys, f"{root}/http/services/{name}/loadBalancer/passHostHeader": "true"}
    if layout == "min":
        return {k: v for k, v in keys.items() if not k.endswith("/entryPoints/0")}
    raise ValueError(f"unknown layout {layout!r}")


def expected_for(routespec: str, target: str) -> Any:
    """What Traefik's API must show for the route (both layouts show the same)."""
    from traefik_proxy import core

    return core.expectations(
        [core.Op("add", routespec, core.make_route(routespec, target, {}))],
        core.Settings(entrypoint=ENTRYPOINT, namespace=NAMESPACE),
    )[0]


def api_keys(root: str, username: str, password: str, rounds: int) -> dict[str, str]:
    """Traefik's API behind basic auth on its own entrypoint, as our proxy sets it up."""
    import bcrypt

    from traefik_proxy import core

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    fragment = core.api_fragment(entrypoint=API_ENTRYPOINT, username=username, hashed_password=hashed)
    return core.flatten(fragment, "/", root)


# ------------------------------------------------------------------ traefik alone


class FloorTraefik:
    """Traefik with one KV provider and nothing of ours in between.

    ``auth`` serves the API as our proxy does (its own entrypoint, basic auth
    with a bcrypt hash of cost ``rounds``, the router in the store); without
    it the API is Traefik's insecure one on its own entrypoint.
    """

    def __init__(
        self,
        store: StoreServer,
        layout: str,
        workdir: Path,
        *,
        auth: bool,
        rounds: int,
        metrics: bool,
        trigger: bool = False,
    ):
        self.store, self.layout, self.workdir = store, layout, workdir
        self.trigger = trigger
        self.auth, self.rounds = auth, rounds
        self.root = "traefik"
        self.public_url = f"http://127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.metrics = metrics_static() if metrics else {}
        self.username, self.password = "bench", secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.client: httpx.AsyncClient | None = None

    def static_config(self) -> dict[str, Any]:
        host = lambda url: url.split("//", 1)[1]  # noqa: E731
        web: dict[str, Any] = {"address": host(self.public_url)}
        if self.layout == "min":
            web["asDefault"] = True
        api_ep = API_ENTRYPOINT if self.auth else "traefik"
        config: dict[str, Any] = {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {ENTRYPOINT: web, api_ep: {"address": host(self.api_url)}},
            "api": {"dashboard": False, "insecure": not self.auth},
            "providers": {
                "providersThrottleDuration": "0s",
                self.store.kind: {"endpoints": [f"127.0.0.1:{self.store.port}"], "rootKey": self.root},
            },
            "log": {"level": "ERROR", "noColor": True},
        }
        if self.metrics:
            config["entryPoints"].update(self.metrics["entryPoints"])
            config["metrics"] = self.metrics["metrics"]
        return config

    @property
    def metrics_url(self) -> str:
        return metrics_url(self.metrics)

    async def start(self, expect_routers: int) -> float:
        """Start; seconds until the API lists at least ``expect_routers`` routers."""
        import tomli_w

        if self.auth:
            self.store.write(api_keys(self.root, self.username, self.password, self.rounds))
        path = self.workdir / f"traefik-{self.store.kind}-{self.layout}.toml"
        path.write_bytes(tomli_w.dumps(self.static_config()).encode())
        started = time.perf_counter()
        with open(self.workdir / "traefik.log", "ab") as log:
            self.process = subprocess.Popen(
                [find_binary("traefik") or "traefik", f"--configfile={path}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        auth = (self.username, self.password) if self.auth else None
        self.client = httpx.AsyncClient(base_url=self.api_url, auth=auth, timeout=30)
        await wait_for_routers(self.client, expect_routers, self.process)
        if self.trigger and self.store.kind == "redis":
            # after traefik's own CONFIG SET (KEA) at start: keyspace events
            # of hash commands only, so the trigger's HINCRBY is the one event
            self.store.client.config_set("notify-keyspace-events", "Kh")
        return time.perf_counter() - started

    def write(self, keys: dict[str, str]) -> None:
        """One transaction; with ``trigger``, it ends with the batch's only event."""
        if self.trigger and self.store.kind == "redis":
            pipe = self.store.client.pipeline(transaction=True)
            pipe.mset(keys)
            pipe.hincrby(TRIGGER_KEY, "n", 1)
            pipe.execute()
        else:
            self.store.write(keys)

    def write_many(self, keys: dict[str, str]) -> int:
        if self.trigger and self.store.kind == "redis":
            self.write(keys)
            return 1
        return self.store.preload(keys)

    async def add(self, routespec: str, target: str, poll: float) -> int:
        """Write one route in one transaction; polls until Traefik shows it live."""
        self.write(route_keys(self.layout, self.root, routespec, target))
        return await until_live(self.client, expected_for(routespec, target), self.store.kind, poll)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        stop_process(self.process)


async def live_on(client: httpx.AsyncClient, expected: Any, provider: str) -> bool:
    """Router then service, as our proxy checks (core.is_live)."""
    from traefik_proxy import core

    key = f"{expected.name}@{provider}"
    r = await client.get(f"/api/http/routers/{key}")
    router = r.json() if r.status_code == 200 else None
    if not core.router_matches(router, expected):
        return False
    s = await client.get(f"/api/http/services/{key}")
    return core.is_live(router, s.json() if s.status_code == 200 else None, expected)


async def until_live(
    client: httpx.AsyncClient, expected: Any, provider: str, poll: float, timeout: float = 300
) -> int:
    """Poll until live; the number of polls."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if await live_on(client, expected, provider):
            return polls
        await asyncio.sleep(poll)
    raise TimeoutError(f"route {expected.name} not live within {timeout}s")


# ------------------------------------------------------------------ measurements


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(seconds) if seconds else None,
        "samples_s": [round(s, 4) for s in seconds],
    }


class Options(argparse.Namespace):
    samples: int
    poll: float
    gap: float
    quiet: float
    auth: bool
    rounds: int
    count: bool
    trigger: bool
    etcd_max_txn_ops: int
    traits: dict[str, Any]


class Costs:
    """What the store and Traefik did since :meth:`start`: the store's counters,
    Traefik's config reloads (with ``--count``) and the CPU time of each."""

    def __init__(self, store: StoreServer, traefik_pid: int | None, metrics_url: str, reloads: float | None):
        self.store, self.metrics_url, self.reloads = store, metrics_url, reloads
        self.counters = store.counters()
        self.cpu = CpuMeter(traefik_pid, store.pid)

    @classmethod
    async def start(cls, store: StoreServer, traefik_pid: int | None, metrics_url: str) -> Costs:
        return cls(store, traefik_pid, metrics_url, await reloads(metrics_url))

    async def since(self, per: int = 1) -> dict[str, float]:
        delta = counter_delta(self.counters, self.store.counters())
        after = await reloads(self.metrics_url)
        if after is not None and self.reloads is not None:
            delta["reloads"] = after - self.reloads
        return {**{k: round(v / per, 2) for k, v in delta.items()}, **self.cpu.since(per)}


async def sequential_adds(
    add: Callable[[str], Awaitable[Any]], public_url: str, first: int, opts: Options
) -> tuple[list[float], list[Any], int]:
    """``--samples`` adds one after another of new routes numbered from
    ``first``, each timed until ``add`` returns, then probed (untimed):
    (durations, what each add returned, how many served)."""
    durations, returned, served = [], [], 0
    for i in range(first, first + opts.samples):
        routespec = f"/bench/b{i}/"
        t = time.perf_counter()
        returned.append(await add(routespec))
        durations.append(time.perf_counter() - t)
        served += await probe(public_url, f"{routespec}probe")
        await asyncio.sleep(opts.gap)
    return durations, returned, served


@dataclass
class Cell:
    """One measurement: a system on a fresh store of ``kind`` at N routes; ``result`` gets the numbers."""

    kind: str
    n: int
    opts: Options
    workdir: Path
    backend: ProbeBackend
    result: dict[str, Any]

    def keys(self, layout: str, root: str, numbers: range) -> dict[str, str]:
        """The store keys of routes ``/bench/b<i>/`` for i in ``numbers``."""
        keys: dict[str, str] = {}
        for i in numbers:
            keys.update(route_keys(layout, root, f"/bench/b{i}/", self.backend.url))
        return keys


@contextlib.asynccontextmanager
async def traefik_alone(cell: Cell, layout: str) -> AsyncIterator[tuple[StoreServer, FloorTraefik]]:
    """A fresh store, and (unstarted) Traefik on it with no proxy of ours."""
    opts = cell.opts
    with StoreServer(cell.kind, opts.etcd_max_txn_ops) as store:
        traefik = FloorTraefik(store, layout, cell.workdir, auth=opts.auth, rounds=opts.rounds,
                               metrics=opts.count, trigger=opts.trigger)  # fmt: skip
        try:
            yield store, traefik
        finally:
            await traefik.stop()


async def measure_floor(cell: Cell, layout: str) -> None:
    """Traefik alone: N preloaded routes, then sequential one-transaction adds."""
    result, opts, target = cell.result, cell.opts, cell.backend.url
    async with traefik_alone(cell, layout) as (store, traefik):
        result["keys_per_route"] = len(route_keys(layout, traefik.root, "/x/", target))
        result["preload_txns"] = store.preload(cell.keys(layout, traefik.root, range(cell.n)))
        result["initial_load_s"] = await traefik.start(cell.n)
        result["confined"] = await confined(traefik, "/bench/b0/probe")
        await settle(traefik.process.pid, store, quiet=opts.quiet)
        costs = await Costs.start(store, traefik.process.pid, traefik.metrics_url)
        durations, polls, served = await sequential_adds(
            lambda routespec: traefik.add(routespec, target, opts.poll), traefik.public_url, cell.n, opts
        )
        result.update(summary(durations), polls=polls, served=served)
        result["backlog_s"] = await settle(traefik.process.pid, store, quiet=opts.quiet)
        result["per_add"] = await costs.since(opts.samples)


async def confined(traefik: FloorTraefik, path: str) -> bool:
    """A route answers on the public entrypoint and not on the API's."""
    return await probe(traefik.public_url, path) and not await probe(traefik.api_url, path)


async def measure_bulk_floor(cell: Cell, layout: str) -> None:
    """Traefik alone, empty, then N routes written at once: the floor of N concurrent adds."""
    result, opts, target, n = cell.result, cell.opts, cell.backend.url, cell.n
    async with traefik_alone(cell, layout) as (store, traefik):
        await traefik.start(0)
        await asyncio.sleep(0.5)
        keys = cell.keys(layout, traefik.root, range(n))
        costs = await Costs.start(store, traefik.process.pid, traefik.metrics_url)
        t = time.perf_counter()
        result["txns"] = await asyncio.to_thread(traefik.write_many, keys)
        result["write_s"] = time.perf_counter() - t
        await until_live(traefik.client, expected_for(f"/bench/b{n - 1}/", target), cell.kind, opts.poll)
        await wait_for_routers(traefik.client, n, traefik.process)
        result["bulk_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await traefik.add("/bench/next/", target, opts.poll)
        result["next_add_s"] = time.perf_counter() - t
        result["backlog_s"] = await settle(traefik.process.pid, store, quiet=opts.quiet)
        result["total"] = await costs.since()


def add_user(proxy: Any, routespec: str, target: str) -> Awaitable[None]:
    """``add_route`` with the user's name as data, as a Hub adds it."""
    return proxy.add_route(routespec, target, {"user": routespec.strip("/").rsplit("/", 1)[-1]})


def make_ours(cell: Cell, store: StoreServer) -> tuple[Any, str, str]:
    """(our proxy, its public URL, its metrics URL or "") on ``store``."""
    extra = metrics_static() if cell.opts.count else {}
    traits = {**({"extra_static_config": extra} if extra else {}), **cell.opts.traits}
    made = systems.make(f"ours-{cell.kind}", {"store_url": store.url, "traits": traits}, cell.workdir)
    return made.proxy, made.public_url, metrics_url(extra)


async def measure_ours(cell: Cell, fresh: bool) -> None:
    """Our proxy through the Proxy API: N concurrent adds, then one more at
    once (behind the bulk's backlog?), then sequential adds.

    ``fresh`` restarts the proxy (and its traefik) on the same store after the
    bulk: the sequential adds then start, like the floor's, from a traefik
    that read N routes at start, without the bulk's backlog of events.
    """
    result, opts, target, n = cell.result, cell.opts, cell.backend.url, cell.n
    with StoreServer(cell.kind, opts.etcd_max_txn_ops) as store:
        proxy, public_url, metrics = make_ours(cell, store)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(systems.running(proxy))
            # the Hub's own route, there before any user's (the route tree's
            # buckets fall back to it)
            await proxy.add_route("/", target, {"hub": True})
            costs = await Costs.start(store, proxy.traefik_process.pid, "")
            bulk = [f"/bench/b{i}/" for i in range(n)]
            result["bulk_s"] = await systems.load_routes(proxy, bulk, target, user_data=True)
            t = time.perf_counter()
            await add_user(proxy, f"/bench/b{n}/", target)
            result["next_add_s"] = time.perf_counter() - t
            if not fresh:
                result["bulk_backlog_s"] = await settle(proxy.traefik_process.pid, store, quiet=opts.quiet)
            result["bulk_total"] = await costs.since()
            if fresh:
                await stack.aclose()
                proxy, public_url, metrics = make_ours(cell, store)
                t = time.perf_counter()
                await stack.enter_async_context(systems.running(proxy))
                await wait_for_routers(proxy.client, n, proxy.traefik_process)
                result["initial_load_s"] = time.perf_counter() - t
                await settle(proxy.traefik_process.pid, store, quiet=opts.quiet)
            costs = await Costs.start(store, proxy.traefik_process.pid, metrics)
            # new users among N: in a bucket that exists (at this scale nearly
            # every new user is), so an add is the route's own keys
            durations, _, served = await sequential_adds(
                lambda routespec: add_user(proxy, routespec, target), public_url, n + 1, opts
            )
            result.update(summary(durations), served=served)
            result["backlog_s"] = await settle(proxy.traefik_process.pid, store, quiet=opts.quiet)
            result["per_add"] = await costs.since(opts.samples)


# ------------------------------------------------------------------ run


SYSTEMS = ("floor-proxy", "floor-min", "ours-fresh", "floor-min-bulk")
OPTIONS = ("poll", "gap", "quiet", "auth", "rounds", "count", "trigger", "etcd_max_txn_ops", "traits")


async def run_cell(system: str, kind: str, n: int, opts: Options, backend: ProbeBackend) -> dict[str, Any]:
    result: dict[str, Any] = {"system": system, "store": kind, "n": n, "load_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix=f"kvfloor-{kind}-") as tmp:
        cell = Cell(kind, n, opts, Path(tmp), backend, result)
        try:
            if system in ("ours", "ours-fresh"):
                await measure_ours(cell, fresh=system == "ours-fresh")
            elif system.endswith("-bulk"):
                await measure_bulk_floor(cell, system.removeprefix("floor-").removesuffix("-bulk"))
            else:
                await measure_floor(cell, system.removeprefix("floor-"))
        except Exception as e:
            return {"system": system, "store": kind, "n": n, "error": f"{type(e).__name__}: {e}"}
    result["load_end"] = os.getloadavg()[0]
    return result


def store_label(result: dict[str, Any]) -> str:
    """The store, and etcd's transaction limit when it is not etcd's default."""
    ops = (result.get("options") or {}).get("etcd_max_txn_ops", ETCD_MAX_TXN_OPS)
    if result["store"] == "etcd" and ops != ETCD_MAX_TXN_OPS:
        return f"etcd, --max-txn-ops={ops}"
    return result["store"]


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per (store, N): sequential medians, ratio to the
    smallest-layout floor, N concurrent adds (ours) and N at once (floor)."""
    results = [{**r, "store": store_label(r)} for r in results]
    cells = {(r["store"], r["n"], r["system"]): r for r in results}
    rows = []
    for store, n in sorted({(r["store"], r["n"]) for r in results}):

        def get(system: str, key: str = "median_s") -> Any:
            return cells.get((store, n, system), {}).get(key)

        low = get("floor-min")
        ratios = [f"x{v / low:.1f}" if v and low else "-" for v in (get("ours"), get("ours-fresh"))]
        bulk = get("ours", "bulk_s") or get("ours-fresh", "bulk_s")
        after = get("ours", "next_add_s") or get("ours-fresh", "next_add_s")
        loads = [c.get("load_start") for (s, m, _), c in cells.items() if (s, m) == (store, n)]
        load = max((x for x in loads if x is not None), default=None)
        rows.append([
            store, f"{n:,}", duration(get("floor-proxy")), duration(low), duration(get("ours")),
            duration(get("ours-fresh")), " / ".join(ratios), duration(bulk), duration(after),
            duration(get("floor-min-bulk", "bulk_s")), "-" if load is None else f"{load:.1f}",
        ])  # fmt: skip
    header = ["store", "N", "floor-proxy", "floor-min", "ours (after bulk)", "ours (fresh)", "ours / min",
              "ours N concurrent", "next add after", "floor-min N at once", "load"]  # fmt: skip
    return "\n".join(markdown_table(header, rows))


def details(results: list[dict[str, Any]]) -> str:
    """Markdown: what one sequential add (or one bulk) cost the store and Traefik."""
    rows = []
    results = [{**r, "store": store_label(r)} for r in results]
    for r in sorted(results, key=lambda r: (r["store"], r["n"])):
        for label, costs, seconds, backlog in (
            (
                "",
                r.get("per_add") or r.get("total"),
                r.get("median_s") or r.get("bulk_s"),
                r.get("backlog_s"),
            ),
            (" bulk", r.get("bulk_total"), r.get("bulk_s"), r.get("bulk_backlog_s")),
        ):
            if costs:
                rows.append([
                    r["store"], f"{r['n']:,}", f"{r['system']}{label}", duration(seconds),
                    costs.get("reads", "-"), costs.get("txns", "-"), costs.get("reloads", "-"),
                    f"{costs.get('traefik_cpu_s', '-')} s", f"{costs.get('store_cpu_s', '-')} s",
                    "-" if backlog is None else f"{backlog:.1f} s",
                ])  # fmt: skip
    header = ["store", "N", "system", "median", "listings", "txns", "reloads", "traefik CPU", "store CPU",
              "backlog after"]  # fmt: skip
    return "\n".join(markdown_table(header, rows))


def parse_args(argv: list[str] | None = None) -> Options:
    p = cli.parser("kvfloor", __doc__)
    p.add_argument("--stores", default="etcd,redis")
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="floor-proxy, floor-min, ours, ours-fresh, floor-min-bulk, floor-proxy-bulk")  # fmt: skip
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--poll", type=float, default=0.005, help="seconds between two polls of the API")
    p.add_argument("--gap", type=float, default=0.0, help="pause after each sequential add")
    p.add_argument("--quiet", type=float, default=1.5,
                   help="seconds Traefik must be idle to count as done with earlier changes")  # fmt: skip
    p.add_argument("--auth", action="store_true", help="floor: API behind basic auth, as ours")
    p.add_argument("--rounds", type=int, default=4, help="bcrypt cost of the floor's API password")
    p.add_argument("--count", action="store_true", help="count reads, events and reloads")
    p.add_argument("--trigger", action="store_true",
                   help="floor on Redis: notify-keyspace-events Kh and one HINCRBY per transaction")  # fmt: skip
    p.add_argument("--etcd-max-txn-ops", type=int, default=ETCD_MAX_TXN_OPS, help="etcd's --max-txn-ops")
    p.add_argument("--trait", action="append", default=[], help="NAME=VALUE traitlet for ours")
    p.add_argument("--out", help="JSON lines file to append results to")
    p.add_argument("--table", help="only print the tables of a --out file")
    opts = p.parse_args(argv, namespace=Options())
    opts.traits = cli.traits(opts.trait)
    return opts


async def amain(opts: Options) -> list[dict[str, Any]]:
    backend = await ProbeBackend().start()
    results = []
    try:
        for n in [int(s) for s in cli.items(opts.sizes)]:
            for kind in cli.items(opts.stores):
                for system in cli.items(opts.systems):
                    result = await run_cell(system, kind, n, opts, backend)
                    result["options"] = {k: getattr(opts, k) for k in OPTIONS}
                    results.append(result)
                    print(json.dumps(result), flush=True)
                    if opts.out:
                        append_jsonl(opts.out, result)
    finally:
        await backend.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.table:
        results = read_jsonl(opts.table)
    else:
        local_environment()
        results = asyncio.run(amain(opts))
    print(table(results))
    print()
    print(details([r for r in results if "error" not in r]))
    return 0 if opts.table or all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
