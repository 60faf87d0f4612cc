"""The fast TOML/YAML writers: what they write parses back to the same config."""

from __future__ import annotations

import tomllib

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from traefik_proxy import core
from traefik_proxy.core.serialize import Memo, to_toml, to_yaml
from traefik_proxy.files import parse_config

keys = st.text(min_size=1, max_size=12).filter(lambda k: "\x00" not in k)
scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
# TOML has no null and no heterogeneous-free restriction issues in 1.0
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)
configs = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(configs)
def test_toml_round_trip(config):
    assert tomllib.loads(to_toml(config)) == config


@settings(max_examples=150, deadline=None)
@given(configs)
def test_yaml_round_trip(config):
    text = to_yaml(config)
    assert parse_config(text.encode(), "yaml") == config
    # and a YAML 1.1 parser agrees wherever YAML 1.1 and 1.2 read numbers alike
    if not any(isinstance(v, float) for v in _leaves(config)):
        assert yaml.safe_load(text) == config


def _leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


@settings(max_examples=50, deadline=None)
@given(configs, configs)
def test_memo_never_changes_the_text(first, second):
    """Rendering successive versions with one memo gives the text a fresh render gives."""
    for render in (to_toml, to_yaml):
        memo = Memo()
        render(first, memo)
        merged = core.deep_merge(first, second)
        assert render(merged, memo) == render(merged)
        shared = core.apply_changes(merged, second, [])
        assert render(shared, memo) == render(shared)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "delete"]), st.integers(0, 20)), max_size=30))
def test_route_documents_round_trip_with_memo(ops):
    memo_toml, memo_yaml = Memo(), Memo()
    document: dict = {}
    for kind, i in ops:
        routespec = f"/user/u{i}/"
        route = (
            core.make_route(routespec, f"http://127.0.0.1:{1000 + i}", {"i": i, "s": "{{x}}"})
            if kind == "add"
            else None
        )
        document = core.changes_for([core.Op(kind, routespec, route)], core.Settings()).apply_to(document)
        assert tomllib.loads(to_toml(document, memo_toml)) == document
        assert yaml.safe_load(to_yaml(document, memo_yaml)) == document  # no floats here
