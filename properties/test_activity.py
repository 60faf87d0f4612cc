"""Reading Traefik's request counters: parse what Traefik prints, stamp only growth."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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


@given(st.dictionaries(names, st.integers(0, 100)), st.dictionaries(names, st.integers(0, 100)))
def test_active_means_served_requests_since_the_last_reading(previous, current):
    assert active_since(None, current) == []  # the first reading is a baseline
    active = set(active_since(previous, current))
    for name, count in current.items():
        assert (name in active) == (count > 0 and previous.get(name) != count)
