"""The add_route table of docs/reload-cost.md from this folder's runs:
bench.json (10 to 10,000 routes, every system) and bench-small-*.json (three
repeats at 10 to 1,000 routes, whose medians' median is taken).

    python benchmarks/reports/2026-12-07/add_route_table.py [-v]
"""
import json, glob, statistics, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
def runs(path):
    d = json.load(open(path))
    return {(r["system"], r["size"]): r["metrics"] for r in d["runs"] if r.get("status") == "ok"}
main = runs(HERE / "bench.json")
smalls = [runs(p) for p in sorted(glob.glob(str(HERE / "bench-small-*.json")))]
def cell(system, size, field):
    if size <= 1000 and smalls and system != "upstream":
        vals = [s[(system, size)]["add_route"][field] for s in smalls if (system, size) in s]
        if vals:
            return statistics.median(vals), vals
    m = main.get((system, size))
    return (m["add_route"][field], None) if m else (None, None)
def fmt(v):
    if v is None: return "-"
    return f"{v/1000:.2f} s" if v >= 1000 else (f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms")
print("| store | routes | ours p50 / p90 | Traefik alone (floor) p50 / p90 | ours / floor | jupyterhub-traefik-proxy 2.1.0 p50 | CHP p50 |")
print("|---|---|---|---|---|---|---|")
for store in ("file", "etcd", "redis"):
    for size in (10, 100, 1000, 10000):
        o50, o_all = cell(f"ours-{store}", size, "p50_ms"); o90, _ = cell(f"ours-{store}", size, "p90_ms")
        f50, f_all = cell(f"floor-{store}", size, "p50_ms"); f90, _ = cell(f"floor-{store}", size, "p90_ms")
        u50 = main.get((f"upstream-{store}", size), {}).get("add_route", {}).get("p50_ms")
        c50, _ = cell("chp", size, "p50_ms")
        ratio = f"{o50/f50:.2f}" if o50 and f50 else "-"
        print(f"| {store} | {size:,} | {fmt(o50)} / {fmt(o90)} | {fmt(f50)} / {fmt(f90)} | {ratio} | {fmt(u50)} | {fmt(c50)} |")
        if "-v" in sys.argv: print("   ours", o_all, "floor", f_all)
