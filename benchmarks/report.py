"""Turn worker results into the side-by-side table, CSV rows and a log-log plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness.output import NO_MATPLOTLIB, pyplot, save, text_table

BASELINE = "ours-file"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    get: Callable[[dict[str, Any]], float | None]
    ratio: bool = True  # lower is better, and a ratio to ours-file means something


def _sub(name: str, field: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda m: (m.get(name) or {}).get(field)


def _bytes_mb(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda m: m[name] / 2**20 if m.get(name) is not None else None


METRICS: list[Metric] = [
    Metric("add_p50_ms", "add_route p50 (until live)", "ms", _sub("add_route", "p50_ms")),
    Metric("add_p90_ms", "add_route p90", "ms", _sub("add_route", "p90_ms")),
    Metric("add_p95_ms", "add_route p95", "ms", _sub("add_route", "p95_ms")),
    Metric("delete_p50_ms", "delete_route p50", "ms", _sub("delete_route", "p50_ms")),
    Metric("delete_p95_ms", "delete_route p95", "ms", _sub("delete_route", "p95_ms")),
    Metric("get_all_p50_ms", "get_all_routes p50 at N", "ms", _sub("get_all_routes", "p50_ms")),
    Metric("bulk_add_s", "N concurrent add_route", "s", lambda m: m.get("bulk_add_s")),
    Metric("bulk_delete_s", "N concurrent delete_route", "s", lambda m: m.get("bulk_delete_s")),
    Metric("rss_before_mb", "RSS hub process, 0 routes", "MB", _bytes_mb("rss_before_bytes")),
    Metric("rss_after_mb", "RSS hub process, N routes", "MB", _bytes_mb("rss_after_bytes")),
    Metric("bytes_per_route", "hub process bytes/route", "B", lambda m: m.get("bytes_per_route")),
    Metric(
        "server_bytes_per_route",
        "proxy server bytes/route",
        "B",
        lambda m: m.get("server_bytes_per_route"),
    ),
    Metric("start_s", "start()", "s", lambda m: m.get("start_s")),
    Metric("live_on_return", "served right after add", "frac", lambda m: m.get("live_on_return"), False),
    Metric("gone_on_return", "gone right after delete", "frac", lambda m: m.get("gone_on_return"), False),
]


def backend_of(system: str) -> str:
    return system.rsplit("-", 1)[-1]


def target(metric: str, system: str, size: int) -> float | None:
    """The issue's target for one of our systems (same units as the metric), if any."""
    kv = backend_of(system) in ("etcd", "redis", "consul")
    if metric == "add_p50_ms":
        return 100.0 if kv else 60.0
    if metric == "delete_p50_ms":
        return 20.0
    if metric == "bulk_add_s":
        return {1000: 2.0, 5000: 8.0}.get(size)
    if metric == "get_all_p50_ms" and size == 10000:
        return 300.0 if kv else 50.0
    return None


def target_text(metric: str, size: int) -> str:
    file_t, kv_t = target(metric, "ours-file", size), target(metric, "ours-etcd", size)
    if file_t is None:
        return ""
    if file_t == kv_t:
        return f"<={_num(file_t)}"
    return f"<={_num(file_t)} file, <={_num(kv_t)} KV"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base <= 0 or value < 0:
        return ""
    r = value / base
    return f" x{r:.2g}" if r < 10 else f" x{r:.0f}"


def cell(
    metric: Metric, system: str, size: int, run: dict[str, Any] | None, base: dict[str, Any] | None
) -> str:
    if run is None:
        return "-"
    value = metric.get(run.get("metrics") or {})
    if value is None:
        return "-" if run.get("status") == "ok" else "(" + str(run.get("status")) + ")"
    text = _num(value)
    if metric.ratio and base is not None and system != BASELINE:
        text += _ratio(value, metric.get(base.get("metrics") or {}))
    if system.startswith("ours-"):
        limit = target(metric.key, system, size)
        if limit is not None:
            text += " ok" if value <= limit else " MISS"
    return text


def table(runs: list[dict[str, Any]], systems: list[str], sizes: list[int], skipped: dict[str, str]) -> str:
    """Per size: one row per metric, one column per system, plus the target."""
    by = {(r["system"], r["size"]): r for r in runs}
    lines: list[str] = []
    for size in sizes:
        shown = [s for s in systems if (s, size) in by]
        if not shown:
            continue
        base = by.get((BASELINE, size))
        header = [f"metric (N={size})", "unit", "target"] + shown
        rows = [header]
        for metric in METRICS:
            row = [metric.label, metric.unit, target_text(metric.key, size)]
            row += [cell(metric, s, size, by.get((s, size)), base) for s in shown]
            rows.append(row)
        load = ["1-min load avg start/end", "", ""] + [
            "{:.1f}/{:.1f}".format(by[(s, size)].get("loadavg_start", 0), by[(s, size)].get("loadavg_end", 0))
            for s in shown
        ]
        rows.append(load)
        status = ["status", "", ""] + [by[(s, size)].get("status", "?") for s in shown]
        rows.append(status)
        lines += text_table(rows, left=3)
        for s in shown:
            run = by[(s, size)]
            if run.get("status") != "ok":
                lines.append(f"  ! {s}: {run.get('status')}: {run.get('error', '')}")
        lines.append("")
    lines.append(
        "xR = ratio to ours-file at the same N (>1: costs more than ours-file); "
        "ok/MISS = one of our systems against the issue's target."
    )
    lines += vs_others(runs, sizes)
    if skipped:
        lines.append("Skipped:")
        lines += [f"  {s}: {reason}" for s, reason in skipped.items()]
    return "\n".join(lines)


def vs_others(runs: list[dict[str, Any]], sizes: list[int]) -> list[str]:
    """Each of ours against the same backend upstream, and against CHP."""
    by = {(r["system"], r["size"]): r for r in runs}
    keys = ["add_p50_ms", "delete_p50_ms", "get_all_p50_ms", "bulk_add_s", "bulk_delete_s", "bytes_per_route"]
    metrics = [m for m in METRICS if m.key in keys]
    out = []
    for size in sizes:
        for ours in sorted(s for s, n in by if n == size and s.startswith("ours-")):
            for other in (f"before-{backend_of(ours)}", f"upstream-{backend_of(ours)}", "chp"):
                a, b = by.get((ours, size)), by.get((other, size))
                if not a or not b:
                    continue
                parts = []
                for m in metrics:
                    va, vb = m.get(a.get("metrics") or {}), m.get(b.get("metrics") or {})
                    if va and vb and va > 0 and vb > 0:
                        r = vb / va
                        parts.append(f"{m.key} {r:.2g}" if r < 10 else f"{m.key} {r:.0f}")
                if parts:
                    out.append(f"N={size} {other} / {ours}: " + ", ".join(parts))
    if out:
        out.insert(0, "Other system's cost / ours (>1: ours is cheaper):")
    return out


def csv_rows(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        m = run.get("metrics") or {}
        row: dict[str, Any] = {"system": run["system"], "size": run["size"], "status": run.get("status")}
        for metric in METRICS:
            row[metric.key] = metric.get(m)
        for metric in METRICS:
            limit = target(metric.key, run["system"], run["size"])
            if limit is not None and run["system"].startswith("ours-"):
                row[f"target_{metric.key}"] = limit
        rows.append(row)
    return rows


def write_csv(path: Path, runs: list[dict[str, Any]]) -> None:
    rows = csv_rows(runs)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


PLOTTED = [
    "add_p50_ms",
    "delete_p50_ms",
    "get_all_p50_ms",
    "bulk_add_s",
    "bulk_delete_s",
    "bytes_per_route",
    "server_bytes_per_route",
    "rss_after_mb",
]


def plot(path: Path, runs: list[dict[str, Any]], systems: list[str]) -> str | None:
    """Cost against route count, log-log, one line per system. Returns why not, if not."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    metrics = [m for m in METRICS if m.key in PLOTTED]
    cols = 4
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    # colour says the store, line style says whose code: ours solid, an earlier
    # checkout of ours (--baseline) dash-dotted, upstream dashed
    styles = {"ours": "-", "before": "-.", "upstream": "--", "chp": ":"}
    colours = {"file": "tab:blue", "etcd": "tab:orange", "redis": "tab:green", "chp": "tab:purple"}
    measured = sorted({r["size"] for r in runs})
    for ax, metric in zip(axes.flat, metrics):
        for system in systems:
            points = sorted(
                (r["size"], metric.get(r.get("metrics") or {})) for r in runs if r["system"] == system
            )
            points = [(x, y) for x, y in points if y is not None and y > 0]
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                styles.get(system.split("-")[0], "-"),
                marker="o",
                label=system,
                color=colours.get(backend_of(system)),
            )
        for system, colour in (("ours-file", "black"), ("ours-etcd", "grey")):
            marks = [(n, target(metric.key, system, n)) for n in measured]
            marks = [(n, t) for n, t in marks if t is not None]
            if marks:
                xs, ys = zip(*marks)
                ax.scatter(
                    xs,
                    ys,
                    marker="_",
                    s=400,
                    color=colour,
                    zorder=3,
                    label=f"target ({'file' if system == 'ours-file' else 'KV'})",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{metric.label} [{metric.unit}]", fontsize=10)
        ax.set_xlabel("routes (N)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6))
    fig.suptitle("JupyterHub proxies: cost against route count (log-log)")
    save(fig, path, rect=(0, 0.06, 1, 0.96))
    return None
