"""Reading Traefik's request counters: parse what Traefik prints, stamp only growth."""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from traefik_proxy.core import active_since, service_request_counts

names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
codes = st.sampled_from(["200", "302", "404", "502"])


def metrics_line(service: str, code: str, count: float) -> str:
    return (
        f'traefik_service_requests_total{{code="{code}",method="GET",protocol="http",'
        f'service="{service}"}} {count:g}'
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.tuples(names, codes, st.sampled_from(["file", "etcd"])), st.integers(0, 10**6)))
def test_counts_sum_codes_per_service_of_one_provider(series):
    text = "\n".join(
        ["# HELP traefik_service_requests_total How many HTTP requests processed"]
        + [metrics_line(f"{n}@{p}", c, v) for (n, c, p), v in series.items()]
        + ['traefik_service_requests_bytes_total{code="200",service="x@file"} 99']
    )
    expected: dict[str, float] = {}
    for (name, _code, provider), value in series.items():
        if provider == "file":
            expected[name] = expected.get(name, 0) + value
    assert service_request_counts(text, "file") == expected


# An oracle independent of the implementation: simulate what Traefik counts.
# Each service served some requests before the first reading and some
# between the two; traefik may have restarted in between (every counter back
# to zero, then counting the requests served since).
# quiet services (nothing served between the readings) are what a wrong
# "active" decision gets wrong most easily: draw zero often
served = st.just(0) | st.integers(0, 50)
histories = st.dictionaries(
    names,
    st.tuples(served, served, served),  # before, between (pre/post restart)
)


@given(histories, st.booleans(), st.sets(names))
@example({"quiet": (5, 0, 0)}, False, set())
@example({"busy": (5, 3, 0), "quiet": (2, 0, 0)}, False, set())
@example({"new": (0, 0, 4)}, False, {"new"})
@example({"back": (7, 0, 2), "gone-quiet": (3, 0, 0)}, True, set())
def test_active_means_served_requests_since_the_last_reading(history, restarted, new_services):
    previous: dict[str, float] = {}
    current: dict[str, float] = {}
    served_between: dict[str, int] = {}
    for name, (before, pre_restart, post_restart) in history.items():
        if name in new_services:
            before = 0  # a route added after the first reading: no counter yet
        else:
            previous[name] = before
        if restarted:
            # what was served before the restart is lost with the counter
            current[name] = post_restart
            served_between[name] = pre_restart + post_restart
        else:
            current[name] = before + pre_restart + post_restart
            served_between[name] = pre_restart + post_restart
    # Traefik reports no series for a service that served nothing since it started
    current = {n: c for n, c in current.items() if c > 0 or n in previous}
    # a counter that restarted and climbed back to exactly its old value looks
    # the same as a quiet one: no reading of counters can tell them apart
    assume(not any(restarted and current.get(n) == previous.get(n) and h[2] > 0 for n, h in history.items()))
    # requests served before the restart, none after it: also invisible in the counters
    assume(not any(restarted and h[2] == 0 and h[1] > 0 for h in history.values()))

    assert active_since(None, current) == []  # the first reading is a baseline
    active = set(active_since(previous, current))
    assert active == {n for n, served in served_between.items() if served > 0 and n in current}


# prometheus_client's text parser (installed with JupyterHub) as an independent
# reader of the same text: whatever Traefik may print, both must agree.
label_values = st.from_regex(r"[A-Za-z0-9_.:/+-]{0,12}", fullmatch=True)
counter_values = st.one_of(
    st.integers(0, 10**12).map(str),
    st.floats(0, 1e15, allow_nan=False).map(repr),
    st.floats(0, 1e15, allow_nan=False).map(lambda v: f"{v:.6e}"),
)
series_st = st.lists(
    st.tuples(
        names,
        st.sampled_from(["file", "etcd", "internal"]),
        st.dictionaries(st.sampled_from(["code", "method", "protocol"]), label_values),
        st.booleans(),  # service label first or last
        counter_values,
        st.one_of(st.none(), st.integers(0, 2**40).map(str)),  # optional timestamp
    ),
    max_size=20,
)


def traefik_metrics(series) -> str:
    lines = [
        "# HELP traefik_config_reloads_total Config reloads",
        "# TYPE traefik_config_reloads_total counter",
        "traefik_config_reloads_total 3",
        "# HELP traefik_service_request_duration_seconds How long it took",
        "# TYPE traefik_service_request_duration_seconds histogram",
    ]
    requests, sizes = [], []
    for name, provider, other, service_first, value, stamp in series:
        service = f'service="{name}@{provider}"'
        rest = [f'{k}="{v}"' for k, v in sorted(other.items())]
        labels = ",".join([service, *rest] if service_first else [*rest, service])
        for le in ("0.1", "1.2", "+Inf"):
            lines.append(f'traefik_service_request_duration_seconds_bucket{{{labels},le="{le}"}} 1')
        lines.append(f"traefik_service_request_duration_seconds_sum{{{labels}}} 0.5")
        lines.append(f"traefik_service_request_duration_seconds_count{{{labels}}} 1")
        tail = f" {stamp}" if stamp else ""
        requests.append(f"traefik_service_requests_total{{{labels}}} {value}{tail}")
        sizes.append(f"traefik_service_requests_bytes_total{{{labels}}} {value}")
    lines += [
        "# HELP traefik_service_requests_bytes_total size",
        "# TYPE traefik_service_requests_bytes_total counter",
        *sizes,
    ]
    lines += [
        "# HELP traefik_service_requests_total How many",
        "# TYPE traefik_service_requests_total counter",
        *requests,
    ]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None)
@given(series_st)
def test_counts_agree_with_prometheus_client(series):
    # Traefik prints one line per label set; a repeated one is not its output
    assume(len({(n, p, tuple(sorted(o.items()))) for n, p, o, *_ in series}) == len(series))
    text = traefik_metrics(series)
    expected: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            service = sample.labels.get("service", "")
            if sample.name == "traefik_service_requests_total" and service.endswith("@file"):
                name = service[: -len("@file")]
                expected[name] = expected.get(name, 0.0) + sample.value
    assert service_request_counts(text, "file") == expected
