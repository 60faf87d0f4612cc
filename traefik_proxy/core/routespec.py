"""Routespecs, targets and route data: validation, normalization and naming.

A JupyterHub routespec is ``/path/`` or ``host.tld/path/``. Everything here is
pure: it decides whether an input is acceptable and what Traefik should be told
about it, and never performs I/O.
"""

from __future__ import annotations

import hashlib
import re
import reprlib
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

#: Longest routespec we accept (JupyterHub's are ``/user/<name>/<server>/``).
MAX_ROUTESPEC_LENGTH = 2048
#: Largest JSON encoding of a route's ``data`` we accept.
MAX_DATA_BYTES = 64 * 1024
#: Longest target URL we accept.
MAX_TARGET_LENGTH = 2048

# Characters that, once the path is percent-decoded, could end or restructure a
# Traefik rule such as PathPrefix(`...`) || Path(`...`): quotes of any kind,
# parentheses, boolean operators, backslashes. None of them appear in the
# routespecs JupyterHub generates (it percent-encodes usernames), so refusing
# them costs nothing and makes rule injection impossible by construction.
_RULE_METACHARACTERS = frozenset("`\"'()|&!\\")
_HOST_RE = re.compile(
    r"^(?=.{1,253}(:|\Z))"  # overall hostname length
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?::[0-9]{1,5})?\Z"  # \Z, not $: "$" also matches before a final newline
)
_NAME_SLUG_RE = re.compile(r"[^A-Za-z0-9]+")


class InvalidRoute(ValueError):
    """A routespec, target or route data that this proxy refuses.

    The message names the value and what to change. A ValueError, so callers
    that catch ValueError (as JupyterHub's own proxy callers do) still do.
    """


class Route(msgspec.Struct, frozen=True):
    """One JupyterHub route as JupyterHub sees it: what was added, exactly."""

    routespec: str
    target: str
    data: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        """The ``{"routespec", "target", "data"}`` dict JupyterHub expects."""
        return {"routespec": self.routespec, "target": self.target, "data": self.data}


_route_encoder = msgspec.json.Encoder()
_route_decoder = msgspec.json.Decoder(Route)


def encode_route(route: Route) -> str:
    """A route record as a JSON string (how it is kept in a store).

    Traefik's file provider runs the file through Go's text/template before
    parsing it, so a ``{{`` anywhere in the file would be read as a template
    action and break the whole file. JSON never puts two ``{`` side by side
    outside a string, so escaping the second brace of each ``{{`` inside
    strings (``\\u007b``) keeps the record equal as JSON and template-inert.
    """
    return _route_encoder.encode(route).decode().replace("{{", "{\\u007b")


def decode_route(raw: str | bytes) -> Route:
    """The inverse of :func:`encode_route`."""
    return _route_decoder.decode(raw)


def split_routespec(routespec: str) -> tuple[str, str]:
    """``"host.tld/a/"`` → ``("host.tld", "/a/")``; ``"/a/"`` → ``("", "/a/")``.

    Expects a normalized routespec.
    """
    if routespec.startswith("/"):
        return "", routespec
    host, slash, path = routespec.partition("/")
    return host, slash + path


def normalize_routespec(routespec: object) -> str:
    """Validate a routespec and return it with a trailing slash.

    Raises InvalidRoute naming the value and what to change when the routespec is
    not ``/path/`` or ``host.tld/path/`` or could alter the Traefik rule built
    from it.
    """
    if not isinstance(routespec, str):
        raise InvalidRoute(
            f"routespec must be a string like '/user/name/' or 'host.tld/path/', "
            f"got {type(routespec).__name__} {routespec!r:.100}"
        )
    if not routespec:
        raise InvalidRoute("routespec must not be empty; use '/' for the default route")
    # the slash first: a normalized routespec must pass this check again
    if not routespec.endswith("/"):
        routespec += "/"
    if len(routespec) > MAX_ROUTESPEC_LENGTH:
        raise InvalidRoute(
            f"routespec {routespec[:60]!r}... is {len(routespec)} characters long "
            f"with its trailing slash; the limit is {MAX_ROUTESPEC_LENGTH}"
        )
    host, path = split_routespec(routespec)
    if host and not _HOST_RE.match(host):
        raise InvalidRoute(
            f"routespec {routespec!r} has host {host!r}, which is not a hostname; "
            f"use 'host.tld/path/' or a path starting with '/'"
        )
    _check_decoded_path(routespec, _decode_path(routespec, path))
    return routespec


def _check_decoded_path(routespec: str, decoded: str) -> None:
    """Refuse a path that, as Traefik sees it, could change or break the rule."""
    for ch in decoded:
        if ch in _RULE_METACHARACTERS or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidRoute(
                f"routespec {routespec!r} contains {ch!r} (after percent-decoding), "
                f"which could change the meaning of the Traefik rule; "
                f"such characters are not allowed in routespecs"
            )
        # Traefik parses rules with Go's scanner, which refuses a byte order
        # mark anywhere but at the start; a lone surrogate is not UTF-8 at all.
        if ch == "\ufeff" or "\ud800" <= ch <= "\udfff":
            raise InvalidRoute(
                f"routespec {routespec!r} contains {ch!r} (after percent-decoding), "
                f"which Traefik cannot read in a rule; "
                f"such characters are not allowed in routespecs"
            )
    if "{{" in decoded:
        raise InvalidRoute(
            f"routespec {routespec!r} contains '{{{{' (after percent-decoding), which "
            f"Traefik's file provider would read as a template action"
        )
    segments = decoded.split("/")[1:-1]
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidRoute(
            f"routespec {routespec!r} has an empty, '.' or '..' path segment; "
            f"Traefik normalizes request paths, so no request could ever match it"
        )


def _decode_path(routespec: str, path: str) -> str:
    """Percent-decode a routespec's path the way Traefik decodes request paths."""
    try:
        return unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRoute(f"routespec {routespec!r} has a percent-encoding that is not UTF-8") from None


def normalize_target(target: Any) -> str:
    """Validate a route target: an absolute http(s) URL without credentials."""
    if not isinstance(target, str):
        raise InvalidRoute(
            f"target must be a URL string like 'http://127.0.0.1:8888', "
            f"got {type(target).__name__} {target!r:.100}"
        )
    # messages get logged, and a target may carry a password: never echo it
    shown = _redact_userinfo(target)
    if len(target) > MAX_TARGET_LENGTH:
        raise InvalidRoute(f"target {shown[:60]!r}... is longer than {MAX_TARGET_LENGTH} characters")
    # isprintable() is False for Unicode spaces, line separators and C1 controls too
    if any(ord(ch) <= 0x20 or not ch.isprintable() for ch in target):
        raise InvalidRoute(f"target {shown!r} contains whitespace or control characters")
    if "{{" in target:
        raise InvalidRoute(
            f"target {shown!r} contains '{{{{', which Traefik's file provider would read as a template action"
        )
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise InvalidRoute(f"target {shown!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRoute(f"target {shown!r} is not an http(s) URL; use e.g. 'http://127.0.0.1:8888'")
    if parts.username is not None or parts.password is not None:
        raise InvalidRoute(
            f"target {parts.scheme}://***@{parts.hostname} carries credentials in the URL; "
            f"Traefik would expose them, so pass a target without 'user:password@'"
        )
    return target


# scheme://userinfo@ — the authority runs to the first / ? or #, userinfo to its last @
_USERINFO_RE = re.compile(r"^([^/?#]*?//)[^/?#]*@")


def _redact_userinfo(target: str) -> str:
    return _USERINFO_RE.sub(r"\1***@", target)


def validate_data(data: Any) -> dict[str, Any]:
    """Route data must be a JSON-serializable dict of bounded size."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRoute(f"route data must be a dict, got {type(data).__name__}")
    try:
        encoded = msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError, RecursionError) as e:
        # reprlib: a plain repr of circular or very deep data recurses too
        raise InvalidRoute(f"route data {reprlib.repr(data)} is not JSON-serializable: {e}") from None
    if len(encoded) > MAX_DATA_BYTES:
        raise InvalidRoute(f"route data is {len(encoded)} bytes as JSON; the limit is {MAX_DATA_BYTES}")
    # a JSON round trip, so what is stored is exactly what is returned later
    # (a dict: it equals data, checked below)
    decoded: dict[str, Any] = msgspec.json.decode(encoded)
    # msgspec quietly turns NaN into null, bytes into base64, sets and tuples
    # into lists, datetimes and non-string keys into strings: refuse instead of
    # storing something other than what was given
    if decoded != data:
        raise InvalidRoute(
            f"route data {reprlib.repr(data)} is not plain JSON (dicts with string keys, "
            f"lists, strings, finite numbers, booleans, None); it would be stored as "
            f"{reprlib.repr(decoded)}"
        )
    return decoded


def make_route(routespec: Any, target: Any, data: Any) -> Route:
    """Validate all three inputs of ``add_route`` at once."""
    return Route(normalize_routespec(routespec), normalize_target(target), validate_data(data))


def route_name(routespec: str, namespace: str = "jupyterhub") -> str:
    """The Traefik router/service name of a normalized routespec.

    Readable (an ASCII slug of the routespec) and unique (a hash of all of it);
    only ``[A-Za-z0-9-]``, so it is safe as a Traefik name and as a KV key.
    """
    slug = _NAME_SLUG_RE.sub("-", routespec).strip("-")[:40].strip("-") or "root"
    digest = hashlib.sha256(routespec.encode()).hexdigest()[:16]
    return f"{namespace}-{slug}-{digest}"


def normalize_host(host: Any) -> str:
    """Validate a hostname (optionally with :port) that rules are pinned to.

    A plain ValueError, not InvalidRoute: the host is a proxy setting, and a
    bad one is a configuration error rather than a refused route.
    """
    if not isinstance(host, str) or not _HOST_RE.match(host):
        raise ValueError(f"{host!r} is not a hostname like 'hub.example.org'")
    return host


def traefik_rule(routespec: str, pin_host: str = "") -> str:
    """The Traefik v3 rule matching exactly the requests under a routespec.

    ``/prefix/`` matches ``/prefix``, ``/prefix/`` and ``/prefix/...`` but not
    ``/prefixother``. Traefik matches the percent-decoded request path, so the
    rule holds the decoded path. A path-only routespec is limited to
    ``pin_host`` when one is given (several Hubs sharing one Traefik).
    Expects a normalized routespec.
    """
    host, path = split_routespec(routespec)
    host = host or pin_host
    decoded = _decode_path(routespec, path)
    if decoded == "/":
        rule = "PathPrefix(`/`)"
    else:
        rule = f"PathPrefix(`{decoded}`) || Path(`{decoded[:-1]}`)"
    if host:
        hostname = host.rsplit(":", 1)[0] if ":" in host else host
        rule = f"Host(`{hostname}`) && ({rule})"
    return rule


#: added to a host route's priority: a host route outranks every path-only
#: route (and every route-tree bucket, :mod:`.routing`) whatever their lengths,
#: as with configurable-http-proxy's host routing, where a path-only route
#: (the Hub's ``/``) is only the default for hosts no route names
HOST_ROUTE_PRIORITY = 2_000_000


def route_priority(routespec: str, pin_host: str = "") -> int:
    """Longer prefixes win; a host route beats every path-only route.

    The priority is the length of ``/host/decoded-path``, the key CHP matches
    on, so the ordering is the one JupyterHub already knows; a host route's
    is ``HOST_ROUTE_PRIORITY`` more (a path route pinned to ``pin_host``
    is still a path route: its length counts the pinned host, no more).
    """
    host, path = split_routespec(routespec)
    decoded = _decode_path(routespec, path)
    if host:
        return HOST_ROUTE_PRIORITY + len(host) + 1 + len(decoded)
    return len(decoded) + (len(pin_host) + 1 if pin_host else 0)
