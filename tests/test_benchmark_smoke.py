"""The benchmark runs end to end for our file backend and reports sane numbers.

Not a performance test: it checks the keys and that numbers are positive, at a
size small enough to finish in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_file_backend_smoke(tmp_path):
    out = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.bench",
            "--sizes", "10", "--samples", "3", "--get-all-repeats", "2",
            "--backends", "file", "--others", "none",
            "--timeout", "50", "--out", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=58,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads((out / "bench.json").read_text())
    assert document["meta"]["sizes"] == [10]
    [run] = document["runs"]
    assert run["system"] == "ours-file" and run["size"] == 10 and run["status"] == "ok"
    m = run["metrics"]
    for key in ("add_route", "delete_route", "get_all_routes"):
        assert m[key]["n"] > 0
        assert m[key]["p50_ms"] > 0 and m[key]["p95_ms"] >= m[key]["p50_ms"]
    for key in ("bulk_add_s", "bulk_delete_s", "start_s", "rss_before_bytes", "rss_after_bytes"):
        assert m[key] > 0, key
    assert m["routes_seen"] == 10
    assert m["routes_left"] == 0
    assert m["live_on_return"] == 1.0  # add_route returned only once traefik served it
    assert (out / "bench.csv").read_text().startswith("system,size,status,")
    assert "add_route p50" in completed.stdout


def test_kvfloor_smoke(tmp_path):
    """Every system of the key-value floor benchmark runs on Redis and etcd at
    a tiny size, and its table is written (a broken cell reports an error)."""
    out = tmp_path / "kvfloor.jsonl"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.kvfloor", "--stores", "redis,etcd", "--sizes", "20",
            "--samples", "2", "--systems", "floor-proxy,floor-min,ours-fresh,floor-min-bulk",
            "--out", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 8
    for result in results:
        assert "error" not in result, result
        if result["system"].endswith("-bulk"):
            assert result["bulk_s"] > 0
        else:
            assert result["median_s"] > 0 and result["served"] == 2, result
    assert "| redis | 20 |" in completed.stdout
