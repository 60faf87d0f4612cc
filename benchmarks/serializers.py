"""Libraries against hand-written code on the Hub's hot paths, side by side in one run.

    python -m benchmarks.serializers [--sizes 1000,10000] [--baseline REV]

TOML writers. The other writer is ``traefik_proxy/core/serialize.py`` as it was at
``--baseline`` (by default the last hand-written one, before tomli-w),
read with ``git show`` and imported under another name, so the package keeps
only one writer. Both render the file provider's document of N routes (built
by the core, as the file provider builds it):

- full render: a cold memo, the whole file (a Hub starting, a file re-read);
- one change: a warm memo, one route's target changed since the last render
  (what each ``add_route`` pays), a different route each time.

Runs alternate between the writers so a busy machine slows both alike;
medians are printed as a table. Each text is checked to parse back to its
document with tomllib.

Metrics parsers. The package's ``service_request_counts`` against
prometheus_client's text parser, on the whole text and on only the
``traefik_service_requests_total`` lines, for Traefik's ``/metrics`` with N
services that served requests (1-3 status codes each; the families and
labels Traefik 3.7 prints with our static config). All must give the same
counts.

Times are CPU time of this process (``time.process_time``): on a shared
machine that is what the code costs, whatever else runs.
"""

from __future__ import annotations

import gc
import importlib.util
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from traefik_proxy import core
from traefik_proxy.core import serialize as package_writer
from traefik_proxy.core.activity import service_request_counts

from .harness import cli
from .harness.output import markdown_table

ROOT = Path(__file__).resolve().parent.parent
#: the last commit whose serialize.py held the hand-written TOML writer
HAND_WRITTEN = "1e6fe4f"


def load_writer(rev: str) -> ModuleType:
    """serialize.py at ``rev``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:traefik_proxy/core/serialize.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"serialize_at_{rev}", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{rev}:traefik_proxy/core/serialize.py", "exec"), module.__dict__)
    return module


def label(writer: ModuleType, where: str) -> str:
    kind = "tomli-w" if hasattr(writer, "tomli_w") else "hand-written"
    return f"{kind} ({where})"


def route(i: int, port: int) -> core.Route:
    return core.make_route(
        f"/user/user{i}/", f"http://10.0.{i // 250}.{i % 250}:{port}", {"user": f"user{i}", "server_name": ""}
    )


def document(n: int) -> dict[str, Any]:
    ops = [core.Op("add", f"/user/user{i}/", route(i, 8888)) for i in range(n)]
    return core.changes_for(ops, core.Settings()).apply_to({})


def changed(doc: dict[str, Any], i: int, port: int) -> dict[str, Any]:
    """``doc`` with route i's target changed; unchanged routes shared, as the file provider does."""
    op = core.Op("add", f"/user/user{i}/", route(i, port))
    return core.changes_for([op], core.Settings()).apply_to(doc)


def timed(render: Callable[[], str]) -> tuple[float, str]:
    gc.collect()
    start = time.process_time()
    text = render()
    return time.process_time() - start, text


def measure(writers: dict[str, ModuleType], n: int, cold_runs: int, change_runs: int) -> dict:
    doc = document(n)
    cold: dict[str, list[float]] = {name: [] for name in writers}
    for _ in range(cold_runs):
        for name, writer in writers.items():
            seconds, text = timed(lambda: writer.to_toml(doc, writer.Memo()))
            cold[name].append(seconds)
    for name, writer in writers.items():
        assert tomllib.loads(writer.to_toml(doc)) == doc, name

    memos = {name: writer.Memo() for name, writer in writers.items()}
    for name, writer in writers.items():
        writer.to_toml(doc, memos[name])
    change: dict[str, list[float]] = {name: [] for name in writers}
    for k in range(change_runs):
        doc = changed(doc, (k * 7919) % n, 9000 + k)
        for name, writer in writers.items():
            seconds, text = timed(lambda: writer.to_toml(doc, memos[name]))
            change[name].append(seconds)
    for name, writer in writers.items():
        assert tomllib.loads(writer.to_toml(doc, memos[name])) == doc, name
    return {
        "cold": {k: statistics.median(v) for k, v in cold.items()},
        "change": {k: statistics.median(v) for k, v in change.items()},
    }


# ------------------------------------------------------------------ metrics

REQUESTS = "traefik_service_requests_total"


def metrics_text(n: int, provider: str = "file") -> str:
    """Traefik's /metrics after each of n services served requests: per
    (service, code, method) a duration histogram and three counters."""
    families: dict[str, list[str]] = {
        "traefik_service_request_duration_seconds": [],
        "traefik_service_requests_bytes_total": [],
        REQUESTS: [],
        "traefik_service_responses_bytes_total": [],
    }
    codes = [("200", "GET"), ("302", "GET"), ("404", "POST")]
    for i in range(n):
        service = f"jupyterhub-user-user{i}-{i:016x}@{provider}"
        for code, method in codes[: 1 + i % 3]:
            labels = f'code="{code}",method="{method}",protocol="http",service="{service}"'
            histogram = families["traefik_service_request_duration_seconds"]
            for le in ("0.1", "0.3", "1.2", "5", "+Inf"):
                histogram.append(f'traefik_service_request_duration_seconds_bucket{{{labels},le="{le}"}} {i}')
            histogram.append(f"traefik_service_request_duration_seconds_sum{{{labels}}} 0.0{i}")
            histogram.append(f"traefik_service_request_duration_seconds_count{{{labels}}} {i}")
            families["traefik_service_requests_bytes_total"].append(
                f"traefik_service_requests_bytes_total{{{labels}}} 0"
            )
            families[REQUESTS].append(f"{REQUESTS}{{{labels}}} {i + 1}")
            families["traefik_service_responses_bytes_total"].append(
                f"traefik_service_responses_bytes_total{{{labels}}} {300 * i}"
            )
    lines = [
        "# HELP traefik_config_reloads_total Config reloads",
        "# TYPE traefik_config_reloads_total counter",
        "traefik_config_reloads_total 3",
    ]
    for name, samples in families.items():
        kind = "histogram" if name.endswith("_seconds") else "counter"
        lines += [f"# HELP {name} {name}", f"# TYPE {name} {kind}", *samples]
    return "\n".join(lines) + "\n"


def counts_from_samples(families: Iterable, provider: str) -> dict[str, float]:
    """service_request_counts' contract, from prometheus_client's parsed families."""
    suffix = f"@{provider}"
    counts: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            service = sample.labels.get("service", "")
            if sample.name == REQUESTS and service.endswith(suffix):
                name = service[: -len(suffix)]
                counts[name] = counts.get(name, 0.0) + sample.value
    return counts


def prometheus_whole(text: str, provider: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return counts_from_samples(text_string_to_metric_families(text), provider)


def prometheus_filtered(text: str, provider: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    lines = "\n".join(line for line in text.splitlines() if line.startswith(REQUESTS + "{"))
    return counts_from_samples(text_string_to_metric_families(lines), provider)


PARSERS = {
    "package (str + regex)": service_request_counts,
    "prometheus_client, requests lines only": prometheus_filtered,
    "prometheus_client, whole text": prometheus_whole,
}


def measure_metrics(n: int, runs: int, whole_runs: int) -> dict[str, float]:
    text = metrics_text(n)
    expected = service_request_counts(text, "file")
    assert len(expected) == n
    times: dict[str, list[float]] = {name: [] for name in PARSERS}
    for run in range(runs):
        for name, parse in PARSERS.items():
            if parse is prometheus_whole and run >= whole_runs:
                continue
            seconds, counts = timed(lambda: parse(text, "file"))
            assert counts == expected, name
            times[name].append(seconds)
    return {"mb": len(text) / 1e6, **{k: statistics.median(v) for k, v in times.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = cli.parser("serializers", __doc__)
    parser.add_argument("--sizes", default="1000,10000", help="numbers of routes, comma-separated")
    parser.add_argument("--baseline", default=HAND_WRITTEN, help="git revision of the other writer")
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--change-runs", type=int, default=51)
    parser.add_argument("--metrics-runs", type=int, default=5)
    parser.add_argument(
        "--whole-text-runs", type=int, default=1, help="runs of prometheus_client on the whole text (slow)"
    )
    args = parser.parse_args(argv)
    sizes = cli.sizes(args.sizes)

    baseline = load_writer(args.baseline)
    writers = {label(package_writer, "package"): package_writer, label(baseline, args.baseline): baseline}
    names = list(writers)
    print(
        f"python {sys.version.split()[0]}; medians of {args.cold_runs} full renders "
        f"and {args.change_runs} one-route changes\n"
    )
    rows = []
    for n in sizes:
        result = measure(writers, n, args.cold_runs, args.change_runs)
        for phase, title in (("cold", "full (cold memo)"), ("change", "one change (warm memo)")):
            ms = [result[phase][name] * 1000 for name in names]
            rows.append([f"{n:,}", title, *(f"{v:.2f} ms" for v in ms), f"{ms[0] / ms[1]:.2f}x"])
    print(
        "\n".join(markdown_table(["routes", "render", *names, "ratio"], rows, "rl" + "r" * len(names) + "r"))
    )

    print(
        f"\nmetrics: medians of {args.metrics_runs} parses "
        f"({args.whole_text_runs} of the whole text with prometheus_client)\n"
    )
    rows = []
    for n in sizes:
        result = measure_metrics(n, args.metrics_runs, args.whole_text_runs)
        rows.append(
            [f"{n:,}", f"{result['mb']:.1f} MB", *(f"{result[name] * 1000:.0f} ms" for name in PARSERS)]
        )
    print("\n".join(markdown_table(["services", "/metrics", *PARSERS], rows, "rr" + "r" * len(PARSERS))))


if __name__ == "__main__":
    main()
