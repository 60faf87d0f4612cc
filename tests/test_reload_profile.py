"""The reload profile benchmark: its pprof reader on hand-built protobuf, and
one end-to-end run against real traefik.

The reader is checked on bytes built here by a tiny protobuf encoder, so what
each field means is written out once, independently of the reader's code.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import pprof

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ a tiny encoder


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 negatives as two's complement, 10 bytes
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def sub(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def packed(field: int, values: list[int]) -> bytes:
    return sub(field, b"".join(varint(v) for v in values))


STRINGS = [
    "", "samples", "count", "cpu", "nanoseconds",
    "runtime.gcBgMarkWorker",                                               # 5
    "github.com/BurntSushi/toml.Decode",                                    # 6
    "github.com/traefik/traefik/v3/pkg/server.(*RouterFactory).CreateRouters",  # 7
    "github.com/traefik/traefik/v3/pkg/provider/file.(*Provider).loadFileConfig",  # 8
    "runtime.mallocgc",                                                     # 9
    "runtime.gcAssistAlloc",                                                # 10
    "github.com/traefik/traefik/v3/pkg/tls.(*Manager).UpdateConfigs",       # 11
    "runtime.schedule",                                                     # 12
]  # fmt: skip
CPU = 10_000_000  # one sample at 100 Hz


def profile_bytes() -> bytes:
    """A CPU profile as Go writes it: value types, samples (location ids packed
    and not), locations (one with an inlined frame), functions, strings."""
    out = b""
    out += sub(1, num(1, 1) + num(2, 2))  # sample_type samples/count
    out += sub(1, num(1, 3) + num(2, 4))  # sample_type cpu/nanoseconds
    samples = [
        # toml.Decode inlined into loadFileConfig's location: decode, 3 samples
        packed(1, [2]) + packed(2, [3, 3 * CPU]),
        # an allocation assist under decoding: GC comes first; location ids unpacked
        num(1, 3) + num(1, 4) + num(1, 2) + packed(2, [1, CPU]),
        packed(1, [1]) + packed(2, [2, 2 * CPU]),  # mark worker: GC
        packed(1, [5]) + packed(2, [1, CPU]),  # router build
        packed(1, [6, 5]) + packed(2, [1, CPU]),  # TLS under router build: TLS
        packed(1, [7, 7]) + packed(2, [1, CPU]),  # recursion; other
    ]
    out += b"".join(sub(2, s) for s in samples)
    locations = {1: [1], 2: [2, 3], 3: [4], 4: [5], 5: [6], 6: [7], 7: [8]}  # id -> function ids, inner first
    for location_id, functions in locations.items():
        lines = b"".join(sub(4, num(1, f) + num(2, 10 + f)) for f in functions)
        out += sub(4, num(1, location_id) + num(3, 0x400000 + location_id) + lines)
    names = {1: 5, 2: 6, 3: 8, 4: 10, 5: 9, 6: 7, 7: 11, 8: 12}  # function id -> string
    for function_id, name in names.items():
        out += sub(5, num(1, function_id) + num(2, name) + num(3, name) + num(4, 0))
    out += b"".join(sub(6, s.encode()) for s in STRINGS)
    out += num(9, 1_700_000_000_000_000_000) + num(10, 2_000_000_000)
    out += sub(11, num(1, 3) + num(2, 4)) + num(12, CPU)
    return out


def test_reader_decodes_a_hand_built_profile():
    raw = profile_bytes()
    for data in (raw, gzip.compress(raw)):  # Go serves it gzipped
        profile = pprof.parse(data)
        assert profile.sample_types == [("samples", "count"), ("cpu", "nanoseconds")]
        assert profile.period_type == ("cpu", "nanoseconds") and profile.period == CPU
        assert profile.duration_nanos == 2_000_000_000
        assert profile.samples[0].stack == (STRINGS[6], STRINGS[8])  # inlined frame first
        assert profile.samples[1].stack == (STRINGS[10], STRINGS[9], STRINGS[6], STRINGS[8])
        assert profile.samples[0].values == [3, 3 * CPU]
        assert profile.total() == 9 * CPU and profile.total("samples") == 9


def test_categories_first_match_by_priority():
    profile = pprof.parse(profile_bytes())
    assert pprof.by_category(profile) == {
        "GC": 3 * CPU,
        "TLS": CPU,
        "API requests": 0,
        "decode": 3 * CPU,
        "router build": CPU,
        pprof.OTHER: CPU,
    }
    assert sum(pprof.by_category(profile).values()) == profile.total()


def test_top_functions_count_a_sample_once_per_function():
    top = {name: (cum, flat) for name, cum, flat in pprof.top_functions(pprof.parse(profile_bytes()), 50)}
    assert top[STRINGS[8]] == (4 * CPU, 0)  # loadFileConfig: the decode samples and the assist
    assert top[STRINGS[12]] == (CPU, CPU)  # recursive: once
    assert top[STRINGS[7]] == (2 * CPU, CPU)


def test_int64_fields_read_as_twos_complement():
    value, end = pprof.varint(varint(-5), 0)
    assert end == 10 and pprof.signed(value) == -5
    assert pprof.numbers(varint(1) + varint(300)) == [1, 300]


def test_reload_profile_end_to_end(tmp_path):
    """A real run at a small size on the file provider.

    1,000 routes, not 20: Go samples at 100 Hz, and at 1,000 routes each
    reload spends tens of ms decoding and building routers, so both show up
    in a few changes (at 20 routes a reload is under 10 ms in all)."""
    out = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.reload_profile", "--routes", "1000", "--store", "file",
            "--changes", "6", "--profiles", "1", "--out", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads((out / "file-1000.json").read_text())
    [profile] = result["profiles"]
    assert profile["changes"] == 6
    assert [c["kind"] for c in profile["changes_made"]] == ["add", "delete"] * 3
    assert sum(profile["categories_ms"].values()) == pytest.approx(profile["total_ms"], abs=0.05)
    assert profile["categories_ms"]["router build"] > 0 and profile["categories_ms"]["decode"] > 0
    summary = result["summary"]
    assert summary["visible_ms"]["n"] == 3 and summary["visible_ms"]["p50"] > 0
    assert "| decode |" in completed.stdout and "time to visible" in completed.stdout

    # the raw profile is kept, and --read gives the same categories
    raw = out / profile["raw"]
    parsed = pprof.parse(raw.read_bytes())
    assert {k: round(v / 1e6, 2) for k, v in pprof.by_category(parsed).items()} == profile["categories_ms"]
    read = subprocess.run(
        [sys.executable, "-m", "benchmarks.reload_profile", "--read", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert "| router build |" in read.stdout
