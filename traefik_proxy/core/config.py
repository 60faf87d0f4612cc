"""Traefik configuration as data: fragments, merging and flattening.

Pure functions over plain dicts. The shell decides where the result goes (a
file, a key-value store); nothing here knows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .routespec import Route, encode_route, route_name, route_priority, traefik_rule
from .routing import Bucket, bucket_chain, bucket_name

Nested = dict[str, Any]
#: a position in a nested config, e.g. ``("http", "routers", name)``
KeyPath = tuple[str, ...]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """What the dynamic config of routes depends on (from the proxy's traitlets)."""

    entrypoint: str = "http"
    namespace: str = "jupyterhub"
    tls: bool = False
    #: limit path-only routes to this host (several Hubs on one Traefik)
    pin_host: str = ""
    #: name of an ``errors`` middleware for every route but the Hub's own
    error_middleware: str = ""
    #: the route tree (:mod:`.routing`): which path segment is bucketed, and
    #: how many of its leading characters make levels (0: every route flat)
    tree_segment: int = 1
    tree_depth: int = 0
    #: > 0: the adaptive tree, whose buckets split past this many keys
    #: (:class:`.routing.RouteTable`); 0: the fixed tree of ``tree_depth`` levels
    tree_bucket_size: int = 0


# ---------------------------------------------------------------- fragments


def route_fragment(route: Route, settings: Settings, bucket: Bucket | None | str = "fixed") -> Nested:
    """The Traefik dynamic config of one route: a router and its service.

    ``bucket``: the one the route hangs in (None: on the entrypoint); by
    default the fixed tree's (the adaptive tree's is in the route table)."""
    name = route_name(route.routespec, settings.namespace)
    router: Nested = {"rule": traefik_rule(route.routespec, settings.pin_host), "service": name}
    if bucket == "fixed":
        chain = bucket_chain(route.routespec, settings.tree_segment, settings.tree_depth)
        bucket = chain[-1] if chain else None
    assert bucket is None or isinstance(bucket, Bucket)
    if bucket is None or bucket.host:
        router["priority"] = route_priority(route.routespec, settings.pin_host)
    # else: in a path bucket, every sibling is a path-only route (pinned alike),
    # so Traefik's default priority, the rule's length, orders them as
    # route_priority does, and a key fewer per route is a store event fewer
    if bucket is not None:
        # a child router: entrypoints and TLS are its outermost bucket's
        router["parentRefs"] = [bucket_name(bucket, settings.namespace)]
    else:
        router["entryPoints"] = [settings.entrypoint]
        if settings.tls:
            router["tls"] = {}
    if settings.error_middleware and not route.data.get("hub"):
        router["middlewares"] = [settings.error_middleware]
    return {
        "http": {
            "routers": {name: router},
            "services": {
                # passHostHeader: Traefik's default (true)
                name: {"loadBalancer": {"servers": [{"url": route.target}]}}
            },
        }
    }


def effective_priority(router: Mapping[str, Any]) -> int:
    """The priority Traefik gives a router: its own, or the rule's length when
    it has none (Go counts it in bytes)."""
    priority = router.get("priority")
    if isinstance(priority, int) and priority > 0:
        return priority
    return len(str(router.get("rule", "")).encode())


def route_paths(routespec: str, settings: Settings) -> list[KeyPath]:
    """The subtrees of the Traefik dynamic config that belong to one route."""
    name = route_name(routespec, settings.namespace)
    return [("http", "routers", name), ("http", "services", name)]


def route_record(route: Route, settings: Settings) -> tuple[str, str]:
    """(key, JSON) of the JupyterHub metadata kept beside the Traefik config.

    The whole record is one JSON string so that data keeps its JSON types
    (numbers, booleans, lists, null) in every store.
    """
    return route_name(route.routespec, settings.namespace), encode_route(route)


def api_fragment(
    *,
    entrypoint: str,
    username: str,
    hashed_password: str,
    name: str = "jupyterhub-traefik-api",
    metrics: bool = False,
    dashboard: bool = False,
) -> Nested:
    """Dynamic config that serves Traefik's API (and, with ``metrics``, its
    Prometheus metrics; with ``dashboard``, its dashboard, which reads the
    API) on its own entrypoint, behind basic auth."""
    auth = f"{name}-auth"
    rule = "PathPrefix(`/api`)"
    if dashboard:
        rule = f"{rule} || PathPrefix(`/dashboard`)"
    routers: Nested = {
        name: {
            "rule": rule,
            "entryPoints": [entrypoint],
            "service": "api@internal",
            "middlewares": [auth],
        }
    }
    if metrics:
        routers[f"{name}-metrics"] = {
            "rule": "Path(`/metrics`)",
            "entryPoints": [entrypoint],
            "service": "prometheus@internal",
            "middlewares": [auth],
        }
    return {
        "http": {
            "routers": routers,
            "middlewares": {auth: {"basicAuth": {"users": [f"{username}:{hashed_password}"]}}},
        }
    }


def names_default_certificate(dynamic_config: Nested) -> bool:
    """Whether a dynamic config names Traefik's default certificate (without
    one, Traefik generates a new RSA key at every reload)."""
    store = dynamic_config.get("tls", {}).get("stores", {}).get("default", {})
    return bool(store.get("defaultCertificate"))


def error_pages_fragment(name: str, hub_url: str, error_path: str) -> Nested:
    """An ``errors`` middleware sending 502-504 answers to the Hub's error page.

    ``error_path`` is the Hub's page with a ``{status}`` placeholder, e.g.
    ``/hub/error/{status}``; Traefik answers with that page's body and the
    original status, as configurable-http-proxy does with its error target.
    """
    return {
        "http": {
            "middlewares": {name: {"errors": {"status": ["502-504"], "service": name, "query": error_path}}},
            "services": {name: {"loadBalancer": {"servers": [{"url": hub_url}], "passHostHeader": True}}},
        }
    }


def tls_fragment(cert_file: str, key_file: str) -> Nested:
    """Dynamic config making a certificate Traefik's default one.

    Traefik reads each of ``cert_file`` and ``key_file`` as a path, or as PEM
    content when it is not the path of a file."""
    return {
        "tls": {"stores": {"default": {"defaultCertificate": {"certFile": cert_file, "keyFile": key_file}}}}
    }


# Characters in request paths that a Jupyter server legitimately receives
# percent-encoded (file names in the contents API). Traefik >= 3.6.4 rejects
# them unless the entrypoint allows them. Backslash and NUL stay rejected.
ALLOWED_ENCODED_CHARACTERS = {
    "allowEncodedSlash": True,
    "allowEncodedPercent": True,
    "allowEncodedQuestionMark": True,
    "allowEncodedHash": True,
    "allowEncodedSemicolon": True,
}


def normalize_url(setting: str, url: str, *, need_host: bool = True) -> str:
    """An http(s) URL Traefik can listen on, with its port made explicit.

    ``http://127.0.0.1/`` → ``http://127.0.0.1:80/`` (``:443`` for https), as
    jupyterhub-traefik-proxy normalises its URLs. Anything else (another
    scheme, no host where ``need_host``, a bad port) raises ValueError naming
    ``setting``, the value and the fix. An empty host (``http://:8000``, as
    JupyterHub's ``bind_url`` has it) means every interface.
    """
    form = f"set {setting} to http://host:port/ or https://host:port/"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{setting} {url!r} is not an http or https URL; {form}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{setting} {url!r} has an invalid port; {form}") from None
    if not parts.netloc or (need_host and not parts.hostname):
        raise ValueError(f"{setting} {url!r} has no host; {form}")
    if port is None:
        # netloc ends with the host (or "]"): appending keeps IPv6 brackets and any login
        parts = parts._replace(netloc=f"{parts.netloc}:{443 if parts.scheme == 'https' else 80}")
    return urlunsplit(parts)


def host_port(host: str, port: int | str) -> str:
    """``host:port`` as Traefik's addresses and endpoints take it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _entrypoint(address: str, tls: bool, **http: Any) -> Nested:
    # aliasHeadersStrategy=delete: drop headers like X_Forwarded_For that a
    # backend deriving variable names from headers would read as the header
    # Traefik sets (Traefik warns at start while it is unset)
    http["aliasHeadersStrategy"] = "delete"
    if tls:
        http["tls"] = {}
    return {"address": address, "http": http}


def static_config(
    *,
    entrypoint: str,
    public_address: str,
    api_entrypoint: str,
    api_address: str,
    tls: bool,
    log_level: str,
    throttle_duration: str,
    metrics: bool = False,
    api_tls: bool = False,
    dashboard: bool = False,
) -> Nested:
    """Traefik's static config, before a provider is added by a subclass.

    ``api_tls`` serves the API entrypoint over TLS (an https API URL), with
    Traefik's default certificate.

    With ``metrics``, Traefik counts requests per service for Prometheus,
    served only where :func:`api_fragment` routes it (manualRouting); the
    ``dashboard`` too is served only where that fragment routes it.
    """
    web = _entrypoint(public_address, tls, encodedCharacters=dict(ALLOWED_ENCODED_CHARACTERS))
    # a router that names no entrypoint (and no parent) is on this one only,
    # never on the API's: a key-value listing read in pages can catch a child
    # router without its parentRefs for one reload
    web["asDefault"] = True
    config: Nested = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {entrypoint: web, api_entrypoint: _entrypoint(api_address, api_tls)},
        "api": {"dashboard": dashboard},
        "providers": {"providersThrottleDuration": throttle_duration},
    }
    if metrics:
        config["metrics"] = {
            "prometheus": {
                "addServicesLabels": True,
                "addEntryPointsLabels": False,
                "addRoutersLabels": False,
                "manualRouting": True,
            }
        }
    # no ANSI colours: traefik's log goes into the Hub's log files
    config["log"] = {"noColor": True}
    if log_level:
        config["log"]["level"] = log_level
    return config


# ---------------------------------------------------------------- nested data


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Nested:
    """A new dict: ``update`` merged into ``base``; dicts merge, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_changes(config: Mapping[str, Any], merge: Mapping[str, Any], delete: Iterable[KeyPath]) -> Nested:
    """A new config: subtrees at ``delete`` removed, then ``merge`` merged in.

    Only the dicts along the changed paths are copied; the rest is shared with
    ``config``, so a change costs O(depth) copies plus the merged part.
    """
    result: Nested = dict(config)
    for path in delete:
        parents = [result]
        node = result
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, Mapping):
                break
            child = dict(child)
            node[key] = child
            node = child
            parents.append(node)
        else:
            if node.pop(path[-1], _MISSING) is _MISSING:
                continue  # nothing there: leave already-empty dicts alone
            # drop dicts emptied by the deletion, so no empty section lingers
            for depth in range(len(parents) - 1, 0, -1):
                if parents[depth]:
                    break
                parents[depth - 1].pop(path[depth - 1], None)
    return _merge_shallow_copy(result, merge)


_MISSING = object()


def _merge_shallow_copy(base: Nested, update: Mapping[str, Any]) -> Nested:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge_shallow_copy(merged[key], value)
        else:
            merged[key] = value
    return merged


def _leaf_to_str(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(
        f"cannot store {value!r:.100} ({type(value).__name__}) at key {key!r}: "
        "a key's value is a string, number or boolean"
    )


def flatten(nested: Mapping[str, Any], sep: str = "/", prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 5}}`` → ``{"a/b": "5"}``; lists become ``name/0``, ``name/1``…

    Leaves become strings (booleans as ``true``/``false``, as Traefik's KV
    providers read them); a leaf that is not a string, number or boolean is a
    ValueError. Empty dicts and lists have no keys and vanish, which
    is how Traefik's KV providers see them too. A key containing the separator
    would be ambiguous, so it raises ValueError.
    """
    flat: dict[str, str] = {}
    _flatten_into(flat, nested, sep, prefix)
    return flat


def _flatten_into(flat: dict[str, str], node: Any, sep: str, prefix: str) -> None:
    if isinstance(node, Mapping):
        items: Iterable[tuple[Any, Any]] = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        if node is None:
            raise ValueError(f"cannot store None at key {prefix!r}")
        flat[prefix] = _leaf_to_str(node, prefix)
        return
    for key, value in items:
        key = str(key)
        if not key or sep in key:
            raise ValueError(f"key {key!r} under {prefix!r} is empty or contains {sep!r}")
        _flatten_into(flat, value, sep, f"{prefix}{sep}{key}" if prefix else key)


def unflatten(flat: Mapping[str, str], sep: str = "/") -> Nested | list[Any]:
    """The inverse of :func:`flatten`: dicts whose keys are exactly 0..n-1 become lists.

    The top level too: keys ``"0"``, ``"1"``... give a list.
    """
    root: Nested = {}
    for key, value in flat.items():
        parts = key.split(sep)
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"key {key!r} nests under the leaf {part!r}")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"key {key!r} is both a leaf and a subtree")
        node[parts[-1]] = value
    return _lists_from_indices(root)


def _lists_from_indices(node: Nested) -> Nested | list[Any]:
    converted = {k: _lists_from_indices(v) if isinstance(v, dict) else v for k, v in node.items()}
    # isascii(): str.isdigit() is also true for e.g. "²", which int() refuses
    if converted and all(k.isascii() and k.isdigit() and k == str(int(k)) for k in converted):
        indices = sorted(int(k) for k in converted)
        if indices == list(range(len(indices))):
            return [converted[str(i)] for i in indices]
    return converted
