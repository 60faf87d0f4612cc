"""Ours against Traefik alone (benchmarks/floor.py) at 10 routes, alternating in one
process, 40 new routes each, with our add_route's write and wait timed (docs/reload-cost.md).

    .venv/bin/python benchmarks/reports/2026-12-07/small_n_alternating.py
"""
import asyncio, sys, tempfile, time, statistics
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.servers import free_port
from traefik_proxy.fileprovider import TraefikFileProviderProxy
from benchmarks.floor import TraefikFileFloor

def mk(cls, d, **kw):
    return cls(public_url=f"http://127.0.0.1:{free_port()}", traefik_api_url=f"http://127.0.0.1:{free_port()}",
        static_config_file=str(d/"t.toml"), dynamic_config_file=str(d/"r.toml"), traefik_pid_file=str(d/"p"), **kw)

async def run(cls, n=10, samples=40, **kw):
    d = Path(tempfile.mkdtemp()); p = mk(cls, d, **kw)
    await p.start()
    await p.add_route("/", "http://127.0.0.1:9", {"hub": True})
    await asyncio.gather(*(p.add_route(f"/user/u{i}x/", "http://127.0.0.1:9", {}) for i in range(n)))
    ts = []; phases = {"apply": [], "wait": []}
    orig_apply, orig_wait = p._apply_dynamic_config, p._wait_for_live
    async def apply(c):
        t = time.perf_counter(); r = await orig_apply(c); phases["apply"].append(time.perf_counter() - t); return r
    async def wait(e):
        t = time.perf_counter(); r = await orig_wait(e); phases["wait"].append(time.perf_counter() - t); return r
    p._apply_dynamic_config, p._wait_for_live = apply, wait
    for i in range(samples):
        t = time.perf_counter(); await p.add_route(f"/user/v{i}y/", f"http://127.0.0.1:{1000+i}", {}); ts.append(time.perf_counter() - t)
        await asyncio.sleep(0.05)
    await p.stop()
    med = lambda xs: 1e3 * statistics.median(xs) if xs else float("nan")
    print(f"{cls.__name__:28} {kw} add p50 {med(ts):.1f} ms  apply {med(phases['apply']):.1f}  wait {med(phases['wait']):.1f}")

async def main():
    for _ in range(2):
        await run(TraefikFileProviderProxy)
        await run(TraefikFileFloor)
        await run(TraefikFileProviderProxy, traefik_poll_interval=0.001)
        await run(TraefikFileFloor, traefik_poll_interval=0.001)
asyncio.run(main())
