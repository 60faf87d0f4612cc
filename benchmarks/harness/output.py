"""Results: percentiles, tables (aligned text and Markdown), JSON files,
plots and progress lines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib)"


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [s * 1e3 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p95_ms": percentile(ms, 95),
        "min_ms": min(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
    }


def duration(seconds: float | None) -> str:
    """A duration as "-", "123 ms" or "1.23 s"."""
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# ------------------------------------------------------------------ tables


def text_table(rows: Sequence[Sequence[str]], left: int = 0) -> list[str]:
    """Aligned columns, the first row a header underlined with dashes; the
    first ``left`` columns flush left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if j < left else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has one letter a column, "l" or "r" (default l)."""
    rule = "|".join("---:" if a == "r" else "---" for a in align.ljust(len(header), "l"))
    return [f"| {' | '.join(str(c) for c in header)} |", f"|{rule}|"] + [
        f"| {' | '.join(str(c) for c in row)} |" for row in rows
    ]


# ------------------------------------------------------------------ files


def write_json(path: Path, document: Any) -> None:
    """Atomically (a reader never sees half a file), indented."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def append_jsonl(path: Path | str, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pyplot() -> Any:
    """matplotlib.pyplot drawing into files, or None without matplotlib (then
    say :data:`NO_MATPLOTLIB`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig: Any, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> None:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


# ------------------------------------------------------------------ progress


def sayer(quiet: bool = False, prefix: str = "", stderr: bool = False) -> Callable[[str], None]:
    """A function printing progress lines at once (nothing when ``quiet``)."""
    stream = sys.stderr if stderr else sys.stdout

    def say(text: str) -> None:
        if not quiet:
            print(prefix + text, file=stream, flush=True)

    return say
