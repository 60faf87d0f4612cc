"""Reading Traefik's request counters: parse what Traefik prints, stamp only growth."""

from __future__ import annotations

from hypothesis import assume, example, given, settings
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


# An oracle independent of the implementation: simulate what Traefik counts.
# Each service served some requests before the first reading and some
# between the two; traefik may have restarted in between (every counter back
# to zero, then counting the requests served since).
# quiet services (nothing served between the readings) are what a wrong
# "active" decision gets wrong most easily: draw zero often
served = st.just(0) | st.integers(0, 50)
histories = st.dictionaries(
    names, st.tuples(served, served, served)  # before, between (pre/post restart)
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
    assume(not any(restarted and current.get(n) == previous.get(n) and h[2] > 0
                   for n, h in history.items()))
    # requests served before the restart, none after it: also invisible in the counters
    assume(not any(restarted and h[2] == 0 and h[1] > 0 for h in history.values()))

    assert active_since(None, current) == []  # the first reading is a baseline
    active = set(active_since(previous, current))
    assert active == {n for n, served in served_between.items() if served > 0 and n in current}
