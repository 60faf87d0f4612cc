"""Routers the Hub did not write that take requests meant for the Hub.

Traefik tries the routers of an entrypoint in priority order, whatever
provider or tool wrote them. A router on the Hub's public entrypoint that
another provider, another tool or an earlier proxy left there can therefore
answer requests the Hub's routes should get: jupyterhub-traefik-proxy's
routers, for one, rank by rule length, far above ours. At start the proxy
names such routers in one warning; this module decides which they are, from
Traefik's ``/api/http/routers`` payload.

The test is deliberately simple, and errs towards naming a router:

- the Hub owns every path (its default route is ``/``), so any router that
  can match a request of the Hub's host overlaps some Hub route;
- it takes precedence when its priority is at least that Hub route's
  (Traefik's order among equal priorities is not specified, so a tie counts);
- so a foreign router is named when it is enabled, on the public entrypoint
  (a router that lists no entrypoints is on all of them), and its priority is
  at least the lowest priority among the Hub's routes of a host it can match.

A router "can match" a host unless its rule starts with ``Host(`…`) &&`` (or
is just ``Host(`…`)``) with no top-level ``||`` and the host differs;
anything else is taken to match every host. Traefik's own routers
(``@internal``: dashboard, ACME challenges, redirections) are configuration of
Traefik itself and are never named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .config import effective_priority
from .routespec import normalize_routespec, route_priority, split_routespec

_SAMPLE = 10


class ForeignRouter(msgspec.Struct, frozen=True):
    """A router from Traefik's API that may take requests meant for the Hub."""

    name: str  # as Traefik lists it, with ``@provider``
    provider: str
    rule: str
    priority: int


def is_hub_router(router: Mapping[str, Any], *, provider: str, namespace: str) -> bool:
    """True for a router this Hub writes: its provider, its namespace's names."""
    name = str(router.get("name", "")).split("@")[0]
    return router.get("provider") == provider and name.startswith(f"{namespace}-")


def foreign_routers(
    routers: Iterable[Mapping[str, Any]],
    *,
    provider: str,
    namespace: str,
    entrypoint: str,
    hub_routespecs: Iterable[str] = ("/",),
    pin_host: str = "",
) -> list[ForeignRouter]:
    """The routers of ``/api/http/routers`` that outrank a Hub route (see above).

    ``provider`` and ``namespace`` identify the Hub's own routers;
    ``hub_routespecs`` are the Hub's routes (at least ``/`` once JupyterHub
    runs) and ``pin_host`` the host path-only routes are pinned to, as in
    :class:`Settings`. Sorted by priority, highest first.
    """
    hub = [_host_and_priority(routespec, pin_host) for routespec in hub_routespecs]
    found = []
    for router in routers:
        if not _candidate(router, provider, namespace, entrypoint):
            continue
        rule = str(router.get("rule", ""))
        # Traefik's API reports the effective priority; without one, the rule's length
        priority = effective_priority(router)
        host = _host_limit(rule)
        if any(priority >= p and (host is None or not h or h == host) for h, p in hub):
            found.append(ForeignRouter(str(router.get("name")), str(router.get("provider")), rule, priority))
    return sorted(found, key=lambda r: (-r.priority, r.name))


def foreign_routers_warning(found: Sequence[ForeignRouter], entrypoint: str) -> str:
    """The one warning naming them (empty when there are none)."""
    if not found:
        return ""
    shown = "; ".join(f"{r.name} (priority {r.priority}, rule {r.rule})" for r in found[:_SAMPLE])
    more = f"; and {len(found) - _SAMPLE} more" if len(found) > _SAMPLE else ""
    return (
        f"{len(found)} router(s) on entrypoint {entrypoint!r} were not written by this Hub "
        f"and take precedence over some of its routes, so requests meant for the Hub "
        f"may go elsewhere: {shown}{more}. Remove them, move them to another entrypoint "
        f"or give them a lower priority."
    )


def _candidate(router: Mapping[str, Any], provider: str, namespace: str, entrypoint: str) -> bool:
    if router.get("provider") == "internal" or router.get("status") == "disabled":
        return False
    entrypoints = router.get("entryPoints") or []
    if entrypoints and entrypoint not in entrypoints:
        return False
    return not is_hub_router(router, provider=provider, namespace=namespace)


def _host_and_priority(routespec: str, pin_host: str) -> tuple[str, int]:
    routespec = normalize_routespec(routespec)
    host = split_routespec(routespec)[0] or pin_host
    return _hostname(host), route_priority(routespec, pin_host)


def _hostname(host: str) -> str:
    # Traefik's Host matcher ignores the port and letter case
    if host.startswith("["):
        return host.partition("]")[0][1:].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _host_limit(rule: str) -> str | None:
    """The one host a rule is limited to, or None (any host, or not sure)."""
    head = "Host(`"
    if not rule.startswith(head) or "`)" not in rule:
        return None
    host, _, rest = rule[len(head) :].partition("`)")
    rest = rest.strip()
    if rest and (not rest.startswith("&&") or _has_top_level_or(rest)):
        return None
    return _hostname(host)


def _has_top_level_or(rule: str) -> bool:
    depth, quoted, previous = 0, False, ""
    for ch in rule:
        if ch == "`":
            quoted = not quoted
        elif not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "|" and previous == "|" and depth == 0:
                return True
        previous = ch
    return False
