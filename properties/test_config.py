"""Properties of nested <-> flat configs and merges."""

from __future__ import annotations

import copy

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from traefik_proxy.compat import deep_merge as deep_merge_in_place
from traefik_proxy.core import apply_changes, as_flat_tree, deep_merge, flatten, unflatten

from .strategies import FAST


def is_index(key: str) -> bool:
    return key.isascii() and key.isdigit()


# Keys without the separator and not plain indices (those turn dicts into lists).
free_keys = st.text(st.characters(exclude_characters="/", codec="utf-8"), min_size=1, max_size=6).filter(
    lambda k: not is_index(k)
)
# A few colliding keys, so merges and deletions meet the same subtrees often.
close_keys = st.sampled_from(["http", "routers", "a", "b", "rule", "servers"])
keys = close_keys | free_keys

str_leaves = st.text(max_size=6)
mixed_leaves = st.one_of(str_leaves, st.integers(), st.booleans())


def trees(leaves, allow_empty: bool = False):
    """Nested dict/list configs; the top level is always a dict."""
    min_size = 0 if allow_empty else 1
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, min_size=min_size, max_size=4)
            | st.dictionaries(keys, inner, min_size=min_size, max_size=4)
        ),
        max_leaves=8,
    )


def configs(leaves=str_leaves, allow_empty: bool = False):
    min_size = 0 if allow_empty else 1
    return st.dictionaries(keys, trees(leaves, allow_empty), min_size=min_size, max_size=4)


def stringified(node):
    if isinstance(node, dict):
        return {k: stringified(v) for k, v in node.items()}
    if isinstance(node, list):
        return [stringified(v) for v in node]
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


# ---------------------------------------------------------------- flatten / unflatten


@FAST
@given(configs(), st.sampled_from(["jupyterhub/routes/", "traefik/", "hubs/a/traefik/http/"]))
def test_a_stores_tree_is_read_flat_in_either_form(config, prefix):
    """_kv_get_tree may return the flat keys (the recipe) or the subtree under
    the prefix nested (jupyterhub-traefik-proxy's stores): both read the same."""
    flat = flatten(config, prefix=prefix.rstrip("/"))
    assert as_flat_tree(flat, prefix) == flat
    assert as_flat_tree(config, prefix) == flat


@FAST
@given(configs(), configs())
def test_the_older_in_place_merge_gives_what_the_pure_merge_gives(base, update):
    expected = deep_merge(base, update)
    merged = copy.deepcopy(base)
    assert deep_merge_in_place(merged, copy.deepcopy(update)) is merged
    assert merged == expected


@FAST
@given(configs())
def test_unflatten_inverts_flatten(config):
    assert unflatten(flatten(config)) == config


@FAST
@given(configs(mixed_leaves))
@example({"a": [True, False, 0, 1, -5]})
def test_unflatten_inverts_flatten_up_to_string_leaves(config):
    assert unflatten(flatten(config)) == stringified(config)


@FAST
@given(configs(mixed_leaves, allow_empty=True))
def test_flat_keys_are_leaf_paths(config):
    flat = flatten(config)
    for key, value in flat.items():
        path = tuple(key.split("/"))
        leaf = _at(_lists_as_dicts(config), path)
        assert value == stringified(leaf)
    # no key is a prefix-path of another: a KV store can hold them all
    for key in flat:
        assert not any(other.startswith(key + "/") for other in flat)


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def _lists_as_dicts(node):
    if isinstance(node, list):
        node = {str(i): v for i, v in enumerate(node)}
    if isinstance(node, dict):
        return {k: _lists_as_dicts(v) for k, v in node.items()}
    return node


segments = st.text(st.characters(exclude_characters="/"), min_size=1, max_size=4) | st.sampled_from(
    ["0", "1", "2", "00", "²", "١", "a"]
)
flat_dicts = st.dictionaries(
    st.lists(segments, min_size=1, max_size=4).map("/".join), st.text(max_size=4), max_size=8
)


@FAST
@given(flat_dicts)
@example({"²": "x"})  # str.isdigit() is true for a superscript two, int() refuses it
@example({"a/²": "x", "a/0": "y"})
def test_flatten_inverts_unflatten(flat):
    """What a KV store holds reads back into a tree that writes back the same keys."""
    conflict = any(other.startswith(key + "/") for key in flat for other in flat)
    if conflict:
        with pytest.raises(ValueError):
            unflatten(flat)
        return
    assert flatten(unflatten(flat)) == flat


@FAST
@given(configs(), st.sampled_from(["/", ".", "|"]))
def test_separator_is_a_parameter(config, sep):
    # single characters only: with "::" a key ending in ":" would be ambiguous
    def keys_ok(node):
        if isinstance(node, dict):
            return all(sep not in k and keys_ok(v) for k, v in node.items())
        if isinstance(node, list):
            return all(keys_ok(v) for v in node)
        return True

    if not keys_ok(config):
        with pytest.raises(ValueError):
            flatten(config, sep)
        return
    assert unflatten(flatten(config, sep), sep) == config


@FAST
@given(st.dictionaries(st.tuples(st.text(), st.text()).map("/".join), st.text(), min_size=1))
def test_keys_with_the_separator_are_refused(config):
    with pytest.raises(ValueError):
        flatten(config)


# ---------------------------------------------------------------- merge and delete


def delete_path(tree: dict, path: tuple[str, ...]) -> bool:
    """Reference deletion: remove the subtree, then any dict that removal left
    empty (a dict that was empty already stays). True if something was removed."""
    head, rest = path[0], path[1:]
    if not rest:
        return tree.pop(head, _MISSING) is not _MISSING
    child = tree.get(head)
    if isinstance(child, dict) and delete_path(child, rest):
        if not child:
            tree.pop(head)
        return True
    return False


_MISSING = object()


def all_paths(config) -> list[tuple[str, ...]]:
    out = []
    if isinstance(config, dict):
        for k, v in config.items():
            out.append((k,))
            out.extend((k, *p) for p in all_paths(v))
    return out


@st.composite
def changes(draw):
    config = draw(configs(mixed_leaves, allow_empty=True))
    existing = all_paths(config)
    random_paths = st.lists(keys, min_size=1, max_size=4).map(tuple)
    path = st.sampled_from(existing) | random_paths if existing else random_paths
    delete = draw(st.lists(path, max_size=5))
    merge = draw(configs(mixed_leaves, allow_empty=True))
    return config, merge, delete


@FAST
@given(changes())
def test_apply_changes_is_delete_then_deep_merge(change):
    config, merge, delete = change
    before = copy.deepcopy((config, merge, delete))
    result = apply_changes(config, merge, delete)

    reference = copy.deepcopy(config)
    for path in delete:
        delete_path(reference, path)
    expected = deep_merge(reference, merge)
    assert result == expected
    assert flatten(result) == flatten(expected)
    # pure: the inputs are untouched
    assert (config, merge, delete) == before


@FAST
@given(configs(mixed_leaves, allow_empty=True), configs(mixed_leaves, allow_empty=True))
def test_deep_merge_flat_is_flat_update_without_replaced_subtrees(base, update):
    merged = deep_merge(base, update)
    flat = flatten(merged)
    for key, value in flatten(update).items():
        assert flat[key] == value
    # every key comes from the update or from the base
    flat_base, flat_update = flatten(base), flatten(update)
    for key, value in flat.items():
        assert flat_update.get(key, flat_base.get(key)) == value


@FAST
@given(configs(mixed_leaves), configs(mixed_leaves))
def test_deep_merge_leaves_inputs_alone(base, update):
    before = copy.deepcopy((base, update))
    merged = deep_merge(base, update)
    assert (base, update) == before
    # and shares nothing mutable with the update
    for key in merged:
        if isinstance(merged[key], (dict, list)) and key in update:
            assert merged[key] is not update[key]
