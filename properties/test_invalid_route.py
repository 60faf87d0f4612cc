"""Bad routespecs, targets and data are refused with InvalidRoute, and only with it.

Callers (the shell, other tools) catch one exception for "this route is
refused"; anything else escaping validation would be a bug in the core.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from traefik_proxy.core import (
    InvalidRoute,
    Route,
    make_route,
    normalize_routespec,
    normalize_target,
    validate_data,
)

from .strategies import FAST, HOSTILE_PIECES, hostile_strings, routespecs
from .test_target_data import _circular, _deep, http_targets, json_dicts, not_json, small_dicts

non_strings = st.one_of(st.integers(), st.none(), st.binary(), st.lists(st.text()), st.floats())

any_routespec = st.one_of(routespecs().map(lambda s: s[0]), hostile_strings, non_strings)


@st.composite
def spoiled_targets(draw):
    """A good target with a piece spliced in, which may or may not spoil it."""
    target = draw(http_targets())
    at = draw(st.integers(0, len(target)))
    piece = draw(st.sampled_from(HOSTILE_PIECES + ["user:pw@", ":99999", "ftp://", "{{", ""]))
    return target[:at] + piece + target[at:]


any_target = st.one_of(http_targets(), spoiled_targets(), st.text(max_size=20), non_strings)


@st.composite
def spoiled_data(draw):
    data = dict(draw(small_dicts))
    data[draw(st.text(max_size=4))] = draw(not_json)
    return data


any_data = st.one_of(
    st.none(),
    json_dicts,
    spoiled_data(),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
    non_strings,
)


def _refused_or_route(call, *args):
    """The call's result, or None if it raised InvalidRoute; anything else propagates."""
    try:
        return call(*args)
    except InvalidRoute as e:
        assert str(e), "an InvalidRoute must say what is wrong"
        return None


@FAST
@given(any_routespec)
@example("/a`b/")
@example("/%FF/")
@example("/" + "a" * 2048)
def test_routespecs_are_normalized_or_refused_with_invalid_route(routespec):
    _refused_or_route(normalize_routespec, routespec)


@FAST
@given(any_target)
@example("http://user:secret@example.org/")
@example("http://example.org:99999/")
@example("ftp://example.org/")
def test_targets_are_accepted_or_refused_with_invalid_route(target):
    _refused_or_route(normalize_target, target)


@FAST
@given(any_data)
@example([])
@example({"n": float("nan")})
@example({1: 1})
def test_data_is_accepted_or_refused_with_invalid_route(data):
    _refused_or_route(validate_data, data)


@FAST
@given(any_routespec, any_target, any_data)
def test_make_route_refuses_exactly_what_its_parts_refuse(routespec, target, data):
    route = _refused_or_route(make_route, routespec, target, data)
    parts_ok = all(
        _refused_or_route(check, value) is not None
        for check, value in [
            (normalize_routespec, routespec),
            (normalize_target, target),
            (validate_data, data),
        ]
    )
    assert (route is not None) == parts_ok
    assert route is None or isinstance(route, Route)


@pytest.mark.parametrize("bad", [_circular(), _deep(5000)], ids=["circular", "deep"])
def test_unencodable_data_raises_invalid_route(bad):
    with pytest.raises(InvalidRoute):
        validate_data(bad)


def test_invalid_route_is_a_value_error():
    """Code written against the ValueError of earlier versions keeps working."""
    assert issubclass(InvalidRoute, ValueError)
    with pytest.raises(ValueError, match="routespec must not be empty"):
        make_route("", "http://127.0.0.1:1", None)
