"""Properties of routespec validation, Traefik rules, names and priorities."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from traefik_proxy.core import (
    Route,
    encode_route,
    normalize_routespec,
    route_name,
    route_priority,
    split_routespec,
    traefik_rule,
)

from .rule_model import And, Call, Or, RuleError, evaluate, parse_rule
from .strategies import (
    FAST,
    SLOW,
    encoded_segment,
    hostile_strings,
    hostnames,
    hosts,
    raw_segment,
    routespecs,
)


def expected_tree(host: str, decoded: str):
    """The one rule structure an accepted routespec may produce."""
    if decoded == "/":
        tree = Call("PathPrefix", ("/",))
    else:
        tree = Or(Call("PathPrefix", (decoded,)), Call("Path", (decoded[:-1],)))
    if host:
        tree = And(Call("Host", (host.rsplit(":", 1)[0],)), tree)
    return tree


def under(prefix: str, path: str) -> bool:
    """JupyterHub's meaning of a route: the prefix without its slash, or below it."""
    return path == prefix[:-1] or path.startswith(prefix)


# ---------------------------------------------------------------- the model itself


@pytest.mark.parametrize(
    "rule, tree",
    [
        ("PathPrefix(`/a/`)", Call("PathPrefix", ("/a/",))),
        (
            "Host(`h`) && (PathPrefix(`/a/`) || Path(`/a`))",
            And(Call("Host", ("h",)), Or(Call("PathPrefix", ("/a/",)), Call("Path", ("/a",)))),
        ),
        # && binds tighter than ||, as in Go
        (
            "Host(`h`) && PathPrefix(`/a/`) || Path(`/a`)",
            Or(And(Call("Host", ("h",)), Call("PathPrefix", ("/a/",))), Call("Path", ("/a",))),
        ),
        # a raw string keeps quotes and parentheses, drops carriage returns
        ('Path(`/a"b)(\r`)', Call("Path", ('/a"b)(',))),
    ],
)
def test_model_parses(rule, tree):
    assert parse_rule(rule) == tree


@pytest.mark.parametrize(
    "rule",
    [
        "PathPrefix(`/a`b/`)",  # a backtick ends the string early
        "PathPrefix(`/a/`",
        'PathPrefix("/a/")',
        "PathPrefix(`/a\ufeff/`)",  # Go's scanner refuses a BOM past offset 0
        "PathPrefix(`/a\x00/`)",
        "Path(`a`)",  # Traefik: path must start with '/'
        "Host(`hé`)",  # Traefik: Host must be ASCII
        "Headers(`a`, `b`)",
        "PathPrefix(`/a/`) ||",
    ],
)
def test_model_rejects(rule):
    with pytest.raises(RuleError):
        parse_rule(rule)


def test_model_injection_changes_structure():
    # what an unchecked routespec "/a`) || PathPrefix(`/" would produce
    rule = "PathPrefix(`/a`) || PathPrefix(`//`) || Path(`/a`) || PathPrefix(`/`)"
    tree = parse_rule(rule)
    assert tree != expected_tree("", "/a`) || PathPrefix(`/")
    assert evaluate(tree, "any", "/anything")


# ---------------------------------------------------------------- normalization


@FAST
@given(routespecs())
def test_generated_routespecs_are_accepted(spec):
    routespec, _, _ = spec
    normalized = normalize_routespec(routespec)
    assert normalized.endswith("/")
    assert normalized.rstrip("/") == routespec.rstrip("/")


@FAST
@given(st.one_of(routespecs().map(lambda s: s[0]), hostile_strings))
@example("/")
@example("host.tld")
@example("/a")
@example("/" + "a" * 2047)  # the added slash made it too long for a second pass
def test_normalize_is_idempotent(routespec):
    try:
        once = normalize_routespec(routespec)
    except ValueError:
        return
    assert once.endswith("/")
    assert normalize_routespec(once) == once


@FAST
@given(st.one_of(st.integers(), st.none(), st.binary(), st.lists(st.text())))
def test_non_strings_are_rejected(value):
    with pytest.raises(ValueError):
        normalize_routespec(value)


# ---------------------------------------------------------------- rules


@FAST
@given(routespecs(), st.data())
def test_rule_matches_exactly_the_paths_under_the_prefix(spec, data):
    routespec, host, decoded = spec
    normalized = normalize_routespec(routespec)
    tree = parse_rule(traefik_rule(normalized))
    assert tree == expected_tree(host, decoded)

    request_host = host.rsplit(":", 1)[0] if host else data.draw(hostnames, "any host")
    candidates = [
        decoded,
        decoded[:-1] or "/",
        decoded + data.draw(st.text(max_size=8), "suffix"),
        decoded[:-1] + data.draw(st.text(min_size=1, max_size=8), "sibling suffix"),
        decoded[:-1] + "other",
        "/" + data.draw(st.text(max_size=20), "random path"),
    ]
    # every proper prefix of the path, e.g. the parent route's paths
    candidates += [decoded[:i] for i in range(1, len(decoded))]
    for path in candidates:
        assert evaluate(tree, request_host, path) == under(decoded, path), (normalized, path)
        if host:
            assert evaluate(tree, request_host.upper(), path) == under(decoded, path)
    if decoded != "/":
        assert not evaluate(tree, request_host, decoded[:-1] + "other")


@FAST
@given(routespecs(min_segments=1).filter(lambda s: s[1]), hostnames, st.text(max_size=10))
def test_rule_with_host_never_matches_another_host(spec, other, suffix):
    routespec, host, decoded = spec
    hostname = host.rsplit(":", 1)[0]
    assume(other.lower() != hostname.lower())
    tree = parse_rule(traefik_rule(normalize_routespec(routespec)))
    for path in (decoded, decoded[:-1], decoded + suffix):
        assert not evaluate(tree, other, path)


@FAST
@given(routespecs(host=None), hosts, hostnames)
def test_a_pinned_path_route_matches_only_the_pinned_host(spec, pin, other):
    """traefik_pin_host: several Hubs share one Traefik, each on its own host."""
    routespec, _, decoded = spec
    hostname = pin.rsplit(":", 1)[0]
    assume(other.lower() != hostname.lower())
    tree = parse_rule(traefik_rule(normalize_routespec(routespec), pin_host=pin))
    assert evaluate(tree, hostname, decoded)
    assert not evaluate(tree, other, decoded)


@SLOW
@given(hostile_strings)
@example("/a`) || PathPrefix(`/")
@example("/a%60%29%20%7C%7C%20PathPrefix%28%60%2F/")
@example("/user/%EF%BB%BF/")  # a BOM: Go's scanner refuses the whole rule
@example("/user/\ud800/")  # a lone surrogate: not UTF-8 at all
@example("/" + "a" * 2047)
@example("/" + "a" * 2048)
@example("/" + "a/" * 1023 + "a")  # 2048 characters; 2049 once normalized
def test_no_accepted_routespec_escapes_its_rule(routespec):
    """Each input is refused with ValueError, or its rule has exactly the expected shape."""
    try:
        normalized = normalize_routespec(routespec)
    except ValueError:
        return
    host, path = split_routespec(normalized)
    decoded = unquote(path, errors="strict")
    rule = traefik_rule(normalized)
    try:
        tree = parse_rule(rule)
    except RuleError as e:
        pytest.fail(f"accepted {routespec!r} but Traefik would refuse its rule {rule!r}: {e}")
    assert tree == expected_tree(host, decoded), (routespec, rule)
    assert "{{" not in rule  # Traefik's file provider templates the whole file
    # what the shell does next with an accepted routespec must not blow up either
    assert re.fullmatch(r"[A-Za-z0-9-]+", route_name(normalized))
    encode_route(Route(normalized, "http://127.0.0.1:8888"))


# ---------------------------------------------------------------- priority and names


@FAST
@given(routespecs(), st.lists(raw_segment, min_size=1, max_size=3), st.booleans())
def test_longer_prefix_has_higher_priority(spec, extra, encode):
    routespec, host, decoded = spec
    a = normalize_routespec(routespec)
    if encode:
        extra = ["".join(f"%{b:02X}" for b in s.encode()) for s in extra]
    tail = "".join(s + "/" for s in extra)
    b = normalize_routespec(a + tail)
    assert unquote(split_routespec(b)[1]).startswith(decoded)
    assert route_priority(b) > route_priority(a)


@FAST
@given(
    st.none() | hosts,
    st.lists(encoded_segment(), min_size=1, max_size=6),
    st.data(),
)
def test_priority_orders_by_decoded_path_prefix(host, segs_a, data):
    """Same path segments, written with independent percent-encodings."""
    n = data.draw(st.integers(0, len(segs_a) - 1), "length of the shorter route")
    a = (host or "") + "/" + "".join(w + "/" for w, _ in segs_a[:n])
    tail = [d for _, d in segs_a[n:]]
    b = (
        (host or "")
        + "/"
        + "".join(d + "/" for _, d in segs_a[:n])
        + "".join(quote(d, safe="") + "/" for d in tail)
    )
    assert route_priority(normalize_routespec(b)) > route_priority(normalize_routespec(a))


@FAST
@given(routespecs(host=None), hostnames)
def test_host_route_beats_the_same_path_without_host(spec, host):
    path = normalize_routespec(spec[0])
    assert route_priority(host + path) > route_priority(path)


@FAST
@given(routespecs(host=None), routespecs(host=None), hostnames)
def test_a_host_route_beats_every_path_only_route(short, long, host):
    """Whatever their lengths, as configurable-http-proxy's host routing does
    (the Hub's path-only ``/`` is the default for hosts no route names)."""
    host_route = normalize_routespec(host + normalize_routespec(short[0]))
    assert route_priority(host_route) > route_priority(normalize_routespec(long[0]) + "x" * 1000 + "/")


name_re = re.compile(r"[A-Za-z0-9-]+")


@SLOW
@given(st.lists(routespecs().map(lambda s: normalize_routespec(s[0])), min_size=1, max_size=12, unique=True))
def test_route_names_are_safe_unique_and_deterministic(normalized):
    names = [route_name(r) for r in normalized]
    assert len(set(names)) == len(names)
    for routespec, name in zip(normalized, names):
        assert name_re.fullmatch(name), name
        assert route_name(routespec) == name
        assert name.startswith("jupyterhub-")
