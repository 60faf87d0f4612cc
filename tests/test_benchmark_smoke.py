"""Every benchmark runs end to end at a tiny size and reports sane numbers.

Not performance tests: each checks the keys and that numbers are positive, at
a size small enough to finish in seconds. ``reload_profile``'s run is in
tests/test_reload_profile.py, with its profile reader's tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: dataplane and churn load the proxy with wrk on a core of its own
needs_load_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("wrk", "node", "taskset")) or (os.cpu_count() or 1) < 2,
    reason="needs wrk, node and taskset (apt-get install wrk nodejs util-linux) and 2 CPUs",
)


def run(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -m benchmarks.MODULE ARGS``, which must succeed."""
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def test_make_bench_lists_every_benchmark():
    """Every runnable module of benchmarks/ but the worker (bench's own) is one
    of `make bench`'s BENCH=... choices, and every choice exists."""
    runnable = {
        p.stem for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__"' in p.read_text()
    }
    listed = set(re.findall(r"^#   (\w+)  +", (ROOT / "Makefile").read_text(), re.M))
    assert listed == runnable - {"worker"}


def test_benchmark_file_backend_smoke(tmp_path):
    out = tmp_path / "results"
    completed = run(
        "bench", "--sizes", "10", "--samples", "3", "--get-all-repeats", "2",
        "--backends", "file", "--others", "none", "--timeout", "50", "--out", str(out),
        timeout=58,
    )  # fmt: skip
    document = json.loads((out / "bench.json").read_text())
    assert document["meta"]["sizes"] == [10]
    [result] = document["runs"]
    assert result["system"] == "ours-file" and result["size"] == 10 and result["status"] == "ok"
    m = result["metrics"]
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
    completed = run(
        "kvfloor", "--stores", "redis,etcd", "--sizes", "20", "--samples", "2", "--quiet", "0.5",
        "--systems", "floor-proxy,floor-min,ours-fresh,floor-min-bulk", "--out", str(out),
        timeout=170,
    )  # fmt: skip
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 8
    for result in results:
        assert "error" not in result, result
        if result["system"].endswith("-bulk"):
            assert result["bulk_s"] > 0
        else:
            assert result["median_s"] > 0 and result["served"] == 2, result
    assert "| redis | 20 |" in completed.stdout


@needs_load_tools
@pytest.mark.parametrize("subdomains", [False, True], ids=["paths", "subdomains"])
def test_dataplane_smoke(tmp_path, subdomains):
    out = tmp_path / "dataplane"
    completed = run(
        "dataplane", "--sizes", "10", "--systems", "ours-file", "--names", "sequential",
        "--duration", "1", "--warmup", "0", "--out", str(out), "--quiet",
        *(["--subdomains"] if subdomains else []),
        timeout=90,
    )  # fmt: skip
    document = json.loads((out / "dataplane.json").read_text())
    assert document["meta"]["subdomains"] is subdomains
    assert document["direct"]["rps"] > 0
    routes = {r["route"]: r for r in document["runs"]}
    assert set(routes) == {"shortest", "last", "first added", "random", "hub"}
    for r in routes.values():
        assert r["rps"] > 0 and r["errors"] == r["non2xx"] == 0, r
        assert r["proxy_cpus"] == [0] and r["proxy_cpu_us_per_req"] > 0, r
    assert "sequential  10" in completed.stdout


@needs_load_tools
@pytest.mark.parametrize(
    "system, extra",
    [("ours-file", []), ("ours-file+shards2", ["--names", "sequential", "--subdomains"])],
    ids=["paths", "subdomains-sharded"],
)
def test_churn_smoke(tmp_path, system, extra):
    out = tmp_path / "churn"
    completed = run(
        "churn", "--routes", "20", "--rate", "4", "--duration", "1", "--settle", "0",
        "--systems", system, "--out", str(out), "--quiet", *extra,
        timeout=90,
    )  # fmt: skip
    [result] = json.loads((out / "churn.json").read_text())["results"]
    assert "error" not in result, result
    assert result["subdomains"] is bool(extra) and (result["host"] or "").endswith(".hub.test") is bool(extra)
    assert result["changes_failed"] == 0 and result["changes_done"] == result["changes_started"] > 0
    assert result["idle"]["rps"] > 0 and result["churn"]["rps"] > 0 and result["add_p50_ms"] > 0
    assert f"{system}  20" in completed.stdout


def test_serializers_smoke():
    if not (ROOT / ".git").exists():
        pytest.skip("the serializers benchmark reads the other writer from git")
    completed = run(
        "serializers", "--baseline", "HEAD", "--sizes", "20", "--cold-runs", "1", "--change-runs", "2",
        "--metrics-runs", "1",
        timeout=60,
    )  # fmt: skip
    assert "| 20 | one change (warm memo) |" in completed.stdout
    assert re.search(r"^\| 20 \| [0-9.]+ MB \| [0-9]+ ms \|", completed.stdout, re.M), completed.stdout
