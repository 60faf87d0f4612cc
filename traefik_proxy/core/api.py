"""Reading Traefik's API answers: is a route live, with the target we just gave?

Traefik applies each provider's configuration as a whole, so a router and its
service from one write become visible together. A route is *live* when its
router is enabled with the expected rule and its service balances to exactly
the expected target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec


class Expected(msgspec.Struct, frozen=True):
    """What Traefik must report for one route to count as served.

    Every router field is compared, not just the rule: a key-value provider
    that reads the store in pages can see a write half done, and then shows
    a router without, say, its priority or entrypoints.
    """

    name: str  # router and service name, without @provider
    rule: str
    target: str
    priority: int
    entrypoints: tuple[str, ...]
    tls: bool = False
    #: a child router's parent (the route tree's bucket); then no entrypoints
    parents: tuple[str, ...] = ()


def _servers(service: Mapping[str, Any] | None) -> list[str]:
    if not service:
        return []
    servers = (service.get("loadBalancer") or {}).get("servers") or []
    return [s.get("url") for s in servers]


def is_live(router: Mapping[str, Any] | None, service: Mapping[str, Any] | None, expected: Expected) -> bool:
    """True if a router payload and a service payload show the expected route."""
    return router_matches(router, expected) and _servers(service) == [expected.target]


def router_matches(router: Mapping[str, Any] | None, expected: Expected) -> bool:
    """True if a router payload is the expected route's router, enabled."""
    return (
        router is not None
        and router.get("status") == "enabled"
        and router.get("rule") == expected.rule
        and router.get("priority") == expected.priority
        and (
            # Traefik reports parents qualified: ``name@provider``
            tuple(p.split("@")[0] for p in router.get("parentRefs") or ()) == expected.parents
            if expected.parents
            else tuple(router.get("entryPoints") or ()) == expected.entrypoints
        )
        and ("tls" in router) == expected.tls
        and str(router.get("service", "")).split("@")[0] == expected.name
    )


def live_in_rawdata(rawdata: Mapping[str, Any], expected: Expected, provider: str) -> bool:
    """:func:`is_live` against one ``/api/rawdata`` listing (one request for a batch)."""
    key = f"{expected.name}@{provider}"
    routers = rawdata.get("routers") or {}
    services = rawdata.get("services") or {}
    return is_live(routers.get(key), services.get(key), expected)
