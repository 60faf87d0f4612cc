"""Route activity from Traefik's Prometheus metrics, for JupyterHub's idle culling.

Traefik counts requests per service (``traefik_service_requests_total``,
labelled ``service="<name>@<provider>"``). A route was active between two
readings of the metrics if its service's count grew; it is then stamped with
the time of the reading, so the stamp is late by at most one polling interval.
A websocket is counted when it closes; JupyterLab's periodic HTTP requests
keep an open tab's route active meanwhile.

The counters are read with a line filter and one regular expression, not
prometheus_client's text parser: that gives the same counts (the properties
check it) but, measured by ``python -m benchmarks.serializers``, costs ~5x
the CPU even on only the request-counter lines (~1 s against ~0.18 s at
10,000 services, ~10 s on the whole text), all of it in the Hub's event loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

_REQUESTS = "traefik_service_requests_total{"
_SERVICE_LABEL = re.compile(r'(?:^|,)service="((?:[^"\\]|\\.)*)"')


def service_request_counts(metrics_text: str, provider: str) -> dict[str, float]:
    """Total requests per service name (without ``@provider``), all codes summed."""
    suffix = f"@{provider}"
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(_REQUESTS):
            continue
        labels, _, value = line[len(_REQUESTS) :].rpartition("} ")
        match = _SERVICE_LABEL.search(labels)
        if not match or not match.group(1).endswith(suffix):
            continue
        try:
            count = float(value.split()[0])
        except (ValueError, IndexError):
            continue
        name = match.group(1)[: -len(suffix)]
        counts[name] = counts.get(name, 0.0) + count
    return counts


def active_since(previous: Mapping[str, float] | None, current: Mapping[str, float]) -> list[str]:
    """Services that served requests between two readings of the counters.

    The first reading (``previous`` is None) is only a baseline: requests
    counted before it may be old (a Hub restarted beside a running traefik).
    After that, a service that is new with requests, or whose count changed
    and is above zero (a lower count means traefik restarted), was active.
    """
    if previous is None:
        return []
    return [name for name, count in current.items() if count > 0 and previous.get(name) != count]


def iso_utc(moment: datetime) -> str:
    """``2026-11-25T20:30:00.123Z``: the form configurable-http-proxy reports."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
