"""Properties of route targets and route data validation."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from traefik_proxy.core import decode_route, encode_route, make_route, normalize_target, validate_data

from .strategies import FAST, hostnames, routespecs

ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::8a2e:370:7334]"])
target_hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(1, 65535)
url_paths = st.text(
    st.characters(codec="ascii", categories=("L", "N"), include_characters="/-._~%"),
    max_size=20,
).map(lambda p: "/" + p if p else "")


@st.composite
def http_targets(draw):
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(ports)
    return f"{scheme}://{draw(target_hosts)}{'' if port is None else f':{port}'}{draw(url_paths)}"


@FAST
@given(http_targets())
def test_http_targets_are_accepted_unchanged(target):
    assert normalize_target(target) == target


@FAST
@given(
    st.from_regex(r"\A[a-z][a-z0-9+.-]{0,8}\Z").filter(lambda s: s not in ("http", "https")),
    target_hosts,
)
def test_other_schemes_are_rejected(scheme, host):
    with pytest.raises(ValueError):
        normalize_target(f"{scheme}://{host}:8888/")


# a password nothing else in a target could contain by accident
secrets = st.from_regex(r"\A[A-Za-z0-9]{6,12}\Z").map(lambda s: f"PW{s}Q")


@FAST
@given(
    st.sampled_from(["http", "https", "ftp", "HTTP", "gopher"]),
    st.from_regex(r"\A[A-Za-z0-9._-]{0,8}\Z"),
    secrets,
    target_hosts,
    st.sampled_from(["", ":8888", ":99999", ":x", " ", "/a b", "\t", "/\u00a0"]),
)
@example("ftp", "user", "PWhunter2Q", "example.org", "")
@example("http", "user", "PWhunter2Q", "example.org", ":99999")
@example("http", "user", "PWhunter2Q", "example.org", "/a b")
def test_credentials_are_rejected_and_never_echoed(scheme, user, password, host, tail):
    """DESIGN: secrets never reach a log line, and ValueError messages get logged."""
    target = f"{scheme}://{user}:{password}@{host}{tail}"
    with pytest.raises(ValueError) as info:
        normalize_target(target)
    assert password not in str(info.value)


@FAST
@given(http_targets(), secrets)
def test_user_only_credentials_are_rejected(target, user):
    scheme, rest = target.split("://", 1)
    with pytest.raises(ValueError):
        normalize_target(f"{scheme}://{user}@{rest}")


whitespace = st.characters(categories=("Zs", "Zl", "Zp", "Cc")) | st.sampled_from(
    " \t\r\n\v\f\x85\u00a0\u2028\u3000"
)


@FAST
@given(http_targets(), whitespace, st.data())
@example("http://a:80", "\u00a0", None)
def test_whitespace_and_control_characters_are_rejected(target, ch, data):
    at = data.draw(st.integers(0, len(target)), "position") if data else 8
    with pytest.raises(ValueError):
        normalize_target(target[:at] + ch + target[at:])


@FAST
@given(st.one_of(st.integers(), st.none(), st.binary(), st.lists(st.text())))
def test_non_string_targets_are_rejected(value):
    with pytest.raises(ValueError):
        normalize_target(value)


# ---------------------------------------------------------------- route data

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8")),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
json_dicts = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def same_json(a, b) -> bool:
    """Equal, and of the same JSON type all the way down (1 vs 1.0 vs True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


@FAST
@given(json_dicts)
def test_json_data_round_trips_exactly(data):
    validated = validate_data(data)
    assert same_json(validated, data)


@FAST
@given(routespecs(), json_dicts)
def test_route_records_round_trip(spec, data):
    route = make_route(spec[0], "http://127.0.0.1:8888", data)
    assert decode_route(encode_route(route)) == route
    assert same_json(decode_route(encode_route(route)).data, data)


class Opaque:
    pass


def _circular():
    d: dict = {}
    d["self"] = d
    return d


def _deep(n: int):
    d: dict = {}
    node = d
    for _ in range(n):
        node["a"] = {}
        node = node["a"]
    return d


not_json = st.sampled_from(
    [
        Opaque(),
        {1, 2},
        b"bytes",
        float("nan"),
        float("inf"),
        -float("inf"),
        complex(1, 2),
        datetime.datetime(2024, 1, 1),
        (1, 2),
        print,
    ]
)


small_dicts = st.dictionaries(st.text(max_size=4), json_leaves, max_size=3)


@FAST
@given(small_dicts, st.text(max_size=5), not_json)
def test_non_json_values_are_rejected(data, key, bad):
    data = dict(data)
    data[key] = bad
    with pytest.raises(ValueError):
        validate_data(data)


@FAST
@given(small_dicts, st.one_of(st.just(1), st.none(), st.just((1,)), st.floats()))
def test_non_string_keys_are_rejected(data, key):
    """A key that is not a string cannot come back as it went in."""
    assume(not (isinstance(key, float) and math.isnan(key)))
    data = dict(data)
    data[key] = 1
    with pytest.raises(ValueError):
        validate_data(data)


@pytest.mark.parametrize("bad", [_circular(), _deep(5000)], ids=["circular", "deep"])
def test_unencodable_structures_raise_value_error(bad):
    with pytest.raises(ValueError):
        validate_data(bad)


@pytest.mark.parametrize("bad", [[], "x", 1, ("a", 1)])
def test_data_must_be_a_dict(bad):
    with pytest.raises(ValueError):
        validate_data(bad)


def test_none_data_is_empty():
    assert validate_data(None) == {}
