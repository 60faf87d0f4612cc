"""Markdown tables from shapes.py results (medians over rounds).

.venv/bin/python -m benchmarks.experiments.summarize RESULTS.json [MORE.json ...]
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from typing import Any


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def summarize(results: list[dict[str, Any]]) -> str:
    cells: dict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for r in results:
        if r["route"] == "reload":
            continue
        cells[(r["size"], r["shape"], r["route"])].append(r)
        if r["shape"] not in order:
            order.append(r["shape"])
    sizes = sorted({k[0] for k in cells})
    base_cpu = {}  # flat's CPU per request at each size, per route
    for (size, shape, route), rs in cells.items():
        if shape == "flat":
            base_cpu[(size, route)] = _median([r["proxy_cpu_us_per_req"] for r in rs])
    lines = []
    for size in sizes:
        lines += [
            f"\n**N = {size:,} user routes**\n",
            "| shape | top-level routers | buckets | largest bucket | user req/s | user p99 ms "
            "| user CPU us/req | hub req/s | hub p99 ms | hub CPU us/req | CPU vs flat "
            "(user / hub) | add until live ms | others' CPU share |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for shape in order:
            user, hub = cells.get((size, shape, "user")), cells.get((size, shape, "hub"))
            if not user or not hub:
                continue
            u_cpu = _median([r["proxy_cpu_us_per_req"] for r in user])
            h_cpu = _median([r["proxy_cpu_us_per_req"] for r in hub])
            bu, bh = base_cpu.get((size, "user")), base_cpu.get((size, "hub"))
            ratio = f"{u_cpu / bu:.2f} / {h_cpu / bh:.2f}" if u_cpu and h_cpu and bu and bh else "-"
            live = _median([x for r in user for x in (r.get("add_live_ms") or [])])
            others = [r["others_cpu_share"] for r in user + hub]
            lines.append(
                f"| {shape} | {user[0]['top_level_routers']} | {user[0]['buckets']} "
                f"| {user[0]['largest_leaf']} "
                f"| {_fmt(_median([r['rps'] for r in user]))} "
                f"| {_fmt(_median([r['p99_ms'] for r in user]), 1)} | {_fmt(u_cpu)} "
                f"| {_fmt(_median([r['rps'] for r in hub]))} "
                f"| {_fmt(_median([r['p99_ms'] for r in hub]), 1)} | {_fmt(h_cpu)} "
                f"| {ratio} | {_fmt(live)} "
                f"| {min(others):.2f}-{max(others):.2f} (n={len(user)}) |"
            )
    lines += reloads(results)
    return "\n".join(lines)


def reloads(results: list[dict[str, Any]]) -> list[str]:
    """Add-until-live per shape and size, from every record that timed some."""
    times: dict[tuple[str, int], list[float]] = defaultdict(list)
    seen: set[tuple[str, int, int]] = set()
    for r in results:
        key = (r["shape"], r["size"], r.get("round", 0))
        if r.get("add_live_ms") and key not in seen:  # user and hub records share them
            seen.add(key)
            times[(r["shape"], r["size"])] += r["add_live_ms"]
    if not times:
        return []
    shapes = list(dict.fromkeys(s for s, _ in times))
    sizes = sorted({n for _, n in times})
    out = [
        "\n**One route added: file written until it serves (ms, median [min-max])**\n",
        "| shape | " + " | ".join(f"N={n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for shape in shapes:
        row = []
        for n in sizes:
            t = times.get((shape, n))
            row.append(f"{statistics.median(t):,.0f} [{min(t):,.0f}-{max(t):,.0f}]" if t else "-")
        out.append(f"| {shape} | " + " | ".join(row) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    results: list[dict[str, Any]] = []
    for path in argv if argv is not None else sys.argv[1:]:
        results += json.load(open(path))["results"]
    print(summarize(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
