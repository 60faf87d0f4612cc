"""Taking over from jupyterhub-traefik-proxy: its layout → a migration plan.

An operator who switches from jupyterhub-traefik-proxy (1.x, 2.x) keeps its
store or dynamic config file, and with it that project's routers. They carry no
priority, so Traefik ranks them by rule length, far above ours: left in place
they keep serving the old targets. This module reads the old layout (described
in ``docs/legacy-layout.md``) and plans its replacement: every old route record
as a route of ours, and every router, service, middleware and record of the
old project to remove. Planning on a store that holds only our layout, or on
the result of a migration, plans nothing.

Only what the old project provably wrote is removed: the routers and services
its naming gives the routespecs of its records; routers named
``router_<escaped routespec>`` with exactly the rule it generated for that
routespec, and their services (a killed Hub can leave them without a
record); services of that naming that no remaining router uses; its
``route_api`` router to ``api@internal`` and the ``auth_api`` basic-auth
middleware, unless a remaining router uses it. Records that do not make a
valid route are removed too (the routers they describe would serve beside
ours) but are listed in the plan with the reason, for a warning; JupyterHub's
``check_routes`` adds the routes it knows again.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import msgspec

from .batch import Changes, Op, changes_for
from .config import KeyPath, Settings, unflatten
from .routespec import Route, encode_route, make_route, route_name

#: The old project's API router and its basic-auth middleware.
LEGACY_API_ROUTER = "route_api"
LEGACY_API_MIDDLEWARE = "auth_api"
_KINDS = ("routers", "services", "middlewares")
_ALIAS_SAFE = frozenset(string.ascii_letters + string.digits + "-")
_ESCAPED_BYTE = re.compile(rb"_([0-9A-Fa-f]{2})")
_SAMPLE = 5


def legacy_alias(routespec: str, kind: str) -> str:
    """The old project's router or service name for a routespec.

    ``kind`` is ``router`` or ``service``; ``/user/a/`` → ``router__2Fuser_2Fa_2F``:
    each character outside ``[A-Za-z0-9-]`` becomes ``_XX`` per UTF-8 byte
    (escapism's escaping, as jupyterhub-traefik-proxy uses it).
    """
    # "X", not "02X": escapism writes bytes below 0x10 as one digit, so names of
    # routespecs with control characters do not decode again (see below)
    escaped = "".join(
        ch if ch in _ALIAS_SAFE else "".join(f"_{b:X}" for b in ch.encode(errors="surrogatepass"))
        for ch in routespec
    )
    return f"{kind}_{escaped}"


def legacy_routespec(alias: str, kind: str) -> str | None:
    """The routespec a name of the old project stands for, or None.

    None unless the name is exactly what :func:`legacy_alias` makes of a
    routespec ending in ``/``, so names that merely look alike are not claimed
    (nor the ambiguous names of routespecs holding characters below U+0010).
    """
    head = f"{kind}_"
    if not alias.startswith(head):
        return None
    raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), alias[len(head) :].encode())
    try:
        routespec = raw.decode()
    except UnicodeDecodeError:
        return None
    if not routespec.endswith("/") or legacy_alias(routespec, kind) != alias:
        return None
    return routespec


def legacy_rule(routespec: str) -> str:
    """The rule the old project wrote for a routespec ending in ``/``."""
    decoded = unquote(routespec)
    host, path = "", decoded
    if not decoded.startswith("/"):
        host, slash, rest = decoded.partition("/")
        path = slash + rest
    rule = f"PathPrefix(`{path}`)"
    if path.rstrip("/"):
        rule = f"( {rule} || Path(`{path.rstrip('/')}`) )"
    return f"Host(`{host}`) && {rule}" if host else rule


def legacy_route_records(jupyterhub_config: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """Our route records for the old project's ``jupyterhub_config`` argument
    of ``_apply_dynamic_config``: ``{"routes": {key: {"routespec", "target",
    "data", ...}}}`` -> ``{our route name: JSON record}``.

    A ValueError names anything else it holds, or a route that is not valid.
    """
    other = sorted(set(jupyterhub_config) - {"routes"})
    if other:
        raise ValueError(
            f"jupyterhub_config holds {other}; only 'routes' "
            "({key: {'routespec', 'target', 'data'}}) is stored"
        )
    records = {}
    for key, info in (jupyterhub_config.get("routes") or {}).items():
        if not isinstance(info, Mapping) or "routespec" not in info or "target" not in info:
            raise ValueError(f"route {key!r} of jupyterhub_config needs 'routespec' and 'target': {info!r}")
        route = make_route(info["routespec"], info["target"], info.get("data") or {})
        records[route_name(route.routespec, namespace)] = encode_route(route)
    return records


def legacy_record_name(key_path: Iterable[str], namespace: str) -> str:
    """The record a ``jupyterhub_keys`` path of the old project names:
    ``["routes", name]``, where name is ours or the old project's router alias."""
    path = list(key_path)
    if len(path) != 2 or path[0] != "routes":
        raise ValueError(f"a route record's key is ['routes', name], not {path!r}")
    routespec = legacy_routespec(path[1], "router")
    return route_name(routespec, namespace) if routespec is not None else path[1]


class InvalidRecord(msgspec.Struct, frozen=True):
    """An old route record that is not a valid route, and why."""

    name: str
    reason: str


class Migration(msgspec.Struct, frozen=True):
    """What taking over from jupyterhub-traefik-proxy means for one store.

    ``routes`` are the old routes as ours, to be written; ``superseded`` the
    routespecs an old record shares with a record of ours (ours is kept);
    ``invalid`` the old records that make no valid route. ``records``,
    ``routers``, ``services`` and ``middlewares`` are the old names to remove.
    """

    routes: tuple[Route, ...] = ()
    superseded: tuple[str, ...] = ()
    invalid: tuple[InvalidRecord, ...] = ()
    records: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when nothing of the old layout is left to take over."""
        return not (self.records or self.routers or self.services or self.middlewares)

    def counts(self) -> dict[str, int]:
        """How many of each kind, e.g. ``{"routes": 3, "routers": 4, …}``."""
        return {field: len(getattr(self, field)) for field in self.__struct_fields__}

    def traefik_paths(self) -> list[KeyPath]:
        """The old subtrees of Traefik's dynamic config, as paths."""
        return [("http", kind, name) for kind in _KINDS for name in getattr(self, kind)]

    def additions(self, settings: Settings) -> Changes:
        """The write that serves the old routes our way (first: nothing is lost
        if the removals never happen; a later plan finds and finishes them)."""
        return changes_for([Op("add", r.routespec, r) for r in self.routes], settings)

    def removals(self) -> Changes:
        """The write that removes the old layout, for a document holding both
        sections (see :meth:`Changes.apply_to`); in a key-value store each old
        record is a subtree, so use :meth:`kv_removal_keys` there."""
        return Changes(delete=self.traefik_paths(), drop_records=list(self.records))

    def kv_removal_keys(self, traefik_prefix: str, jupyterhub_prefix: str, sep: str = "/") -> list[str]:
        """The old layout as subtree keys (ending in ``sep``) to delete."""
        keys = [sep.join((traefik_prefix, *path)) + sep for path in self.traefik_paths()]
        keys += [sep.join((jupyterhub_prefix, "routes", name)) + sep for name in self.records]
        return keys

    def summary(self) -> dict[str, str]:
        """One log line per kind present; ``invalid`` deserves a warning.

        Names and routespecs only: never a target's or a middleware's content.
        """
        lines = {}
        if self.routes:
            lines["routes"] = f"migrated {_listed([r.routespec for r in self.routes], 'route')}"
        if self.superseded:
            lines["superseded"] = (
                f"kept this proxy's own record, not the old one, for {_listed(self.superseded, 'routespec')}"
            )
        if self.invalid:
            shown = [f"{i.name} ({i.reason})" for i in self.invalid]
            lines["invalid"] = (
                f"removed, as they make no valid route (JupyterHub's check_routes adds "
                f"the routes it knows again), {_listed(shown, 'route record')}"
            )
        for kind, noun in _REMOVED.items():
            if getattr(self, kind):
                lines[kind] = f"removed its {_listed(getattr(self, kind), noun)}"
        return {k: f"Taking over from jupyterhub-traefik-proxy: {v}" for k, v in lines.items()}


_REMOVED = {
    "records": "route record",
    "routers": "router",
    "services": "service",
    "middlewares": "middleware",
}


def _listed(items: Iterable[str], noun: str) -> str:
    items = list(items)
    shown = ", ".join(items[:_SAMPLE])
    more = f" and {len(items) - _SAMPLE} more" if len(items) > _SAMPLE else ""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}: {shown}{more}"


# ---------------------------------------------------------------- planning


def plan_kv_migration(
    flat: Mapping[str, str],
    *,
    traefik_prefix: str = "traefik",
    jupyterhub_prefix: str = "jupyterhub",
    sep: str = "/",
    namespace: str = "jupyterhub",
) -> Migration:
    """The migration of a key-value store, from its flat keys (any prefixes).

    ``namespace`` is :attr:`Settings.namespace`, which names our records.
    """
    http_prefix = sep.join((traefik_prefix, "http", ""))
    http = {kind: _kv_tables(flat, f"{http_prefix}{kind}{sep}", sep) for kind in _KINDS}
    routes_prefix = sep.join((jupyterhub_prefix, "routes", ""))
    old = _kv_tables(flat, routes_prefix, sep)
    ours = {key[len(routes_prefix) :] for key in flat if key.startswith(routes_prefix)}
    ours = {name for name in ours if sep not in name}
    return _plan(http, old, ours, namespace)


def kv_migration_probe(traefik_prefix: str, jupyterhub_prefix: str, sep: str = "/") -> tuple[str, ...]:
    """The narrow key prefixes to read at every start: the old project's names
    start with ``router_``, ``service_``, ``route_api``, ``auth_api``, ours
    with the namespace (letters, digits, ``-``), so nothing found under them
    means nothing to take over, however many routes of ours the store holds."""
    http = sep.join((traefik_prefix, "http", ""))
    return (
        f"{http}routers{sep}router_",
        f"{http}routers{sep}{LEGACY_API_ROUTER}{sep}",
        f"{http}services{sep}service_",
        f"{http}middlewares{sep}{LEGACY_API_MIDDLEWARE}{sep}",
        sep.join((jupyterhub_prefix, "routes", "router_")),
    )


def kv_migration_reads(traefik_prefix: str, jupyterhub_prefix: str, sep: str = "/") -> tuple[str, ...]:
    """What else :func:`plan_kv_migration` needs once the probe found
    something: every router (one that stays may use an old service or
    ``auth_api``) and every record (ours supersede old ones). Planning on
    these and the probe's keys equals planning on both prefixes whole."""
    routers = sep.join((traefik_prefix, "http", "routers", ""))
    return routers, sep.join((jupyterhub_prefix, "routes", ""))


def plan_file_migration(
    document: Mapping[str, Any], *, records_key: str = "jupyterhub", namespace: str = "jupyterhub"
) -> Migration:
    """The migration of a dynamic config file's document (TOML or YAML, parsed)."""
    http_section = _table(document.get("http"))
    http = {kind: _table(http_section.get(kind)) for kind in _KINDS}
    routes = _table(_table(document.get(records_key)).get("routes"))
    old = {name: record for name, record in routes.items() if isinstance(record, Mapping)}
    ours = {name for name, record in routes.items() if isinstance(record, str)}
    return _plan(http, old, ours, namespace)


def _table(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _kv_tables(flat: Mapping[str, str], prefix: str, sep: str) -> dict[str, Any]:
    """Subtrees under ``prefix``, one per next key component, unflattened.

    A subtree that does not unflatten (a key both leaf and subtree) is an
    empty table: it matches nothing, so nothing of it is claimed.
    """
    grouped: dict[str, dict[str, str]] = {}
    for key, value in flat.items():
        if key.startswith(prefix):
            name, _, rest = key[len(prefix) :].partition(sep)
            if rest:
                grouped.setdefault(name, {})[rest] = value
    tables: dict[str, Any] = {}
    for name, subkeys in grouped.items():
        try:
            tables[name] = unflatten(subkeys, sep)
        except ValueError:
            tables[name] = {}
    return tables


def _plan(
    http: Mapping[str, Mapping[str, Any]],
    old: Mapping[str, Any],
    ours: set[str],
    namespace: str,
) -> Migration:
    routes, superseded, invalid = _routes_of(old, ours, namespace)
    routers = _old_routers(http["routers"], old)
    services = _old_services(http, routers, old)
    middlewares = _old_middlewares(http, routers)
    return Migration(
        routes=routes,
        superseded=superseded,
        invalid=invalid,
        records=tuple(sorted(old)),
        routers=tuple(sorted(routers)),
        services=tuple(sorted(services)),
        middlewares=tuple(sorted(middlewares)),
    )


def _routes_of(
    old: Mapping[str, Any], ours: set[str], namespace: str
) -> tuple[tuple[Route, ...], tuple[str, ...], tuple[InvalidRecord, ...]]:
    routes: dict[str, Route] = {}
    superseded: list[str] = []
    invalid: list[InvalidRecord] = []
    for name in sorted(old):
        record = old[name]
        try:
            # a key-value store held data as strings: kept as found, since
            # that is what the old proxy has been returning to JupyterHub
            route = make_route(record.get("routespec"), record.get("target"), record.get("data"))
        except ValueError as e:
            invalid.append(InvalidRecord(name, str(e)))
            continue
        if route_name(route.routespec, namespace) in ours:
            superseded.append(route.routespec)
        else:
            routes.setdefault(route.routespec, route)
    return tuple(routes.values()), tuple(superseded), tuple(invalid)


def _recorded(old: Mapping[str, Any], kind: str) -> set[str]:
    """The names the old records' routespecs give, in the old project's naming."""
    routespecs = (_table(record).get("routespec") for record in old.values())
    return {legacy_alias(r, kind) for r in routespecs if isinstance(r, str)}


def _old_routers(routers: Mapping[str, Any], old: Mapping[str, Any]) -> set[str]:
    found = _recorded(old, "router") & set(routers)
    for name, router in routers.items():
        routespec = legacy_routespec(name, "router")
        if routespec is not None and _table(router).get("rule") == legacy_rule(routespec):
            found.add(name)
    api = _table(routers.get(LEGACY_API_ROUTER))
    if api.get("service") == "api@internal":
        found.add(LEGACY_API_ROUTER)
    return found


def _old_services(
    http: Mapping[str, Mapping[str, Any]], routers: set[str], old: Mapping[str, Any]
) -> set[str]:
    services = http["services"]
    named = _recorded(old, "service") | {"service_" + n[len("router_") :] for n in routers}
    found = named & set(services)
    # an orphan (its router already gone) unless a router that stays uses it
    used = {
        str(_table(r).get("service")).split("@")[0] for n, r in http["routers"].items() if n not in routers
    }
    for name in set(services) - used:
        if legacy_routespec(name, "service") is not None and "loadBalancer" in _table(services[name]):
            found.add(name)
    return found


def _old_middlewares(http: Mapping[str, Mapping[str, Any]], routers: set[str]) -> set[str]:
    middleware = _table(http["middlewares"].get(LEGACY_API_MIDDLEWARE))
    if "basicAuth" not in middleware:
        return set()
    for name, router in http["routers"].items():
        used = _table(router).get("middlewares")
        names = used.values() if isinstance(used, Mapping) else used or ()
        if name not in routers and any(
            isinstance(m, str) and m.split("@")[0] == LEGACY_API_MIDDLEWARE for m in names
        ):
            return set()  # something that stays still needs it
    return {LEGACY_API_MIDDLEWARE}
