"""The reads of a key-value store's takeover at start: narrow, and enough.

At every start the key-value proxies read only the probe prefixes of
:func:`traefik_proxy.core.kv_migration_probe`, and the prefixes of
:func:`~traefik_proxy.core.kv_migration_reads` only when the probe found
something (traefik_proxy/kv_migration.py). These properties check that this
loses nothing: on any mix of the old project's layout (as
jupyterhub-traefik-proxy 2.1.0 writes it, built by properties/test_legacy.py),
ours and other tools' keys, planning on what those reads return is planning
on the whole store, the old keys to delete are all among them, and a store
with nothing old left (but look-alikes of other tools) has nothing under
the probe but those look-alikes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import (
    Migration,
    Route,
    kv_migration_probe,
    kv_migration_reads,
    plan_kv_migration,
)

from .strategies import FAST
from .test_legacy import PREFIXES, apply_kv, foreign_kv, good_routespecs, old_kv, our_kv, scenarios


def under(store: dict[str, str], prefixes) -> dict[str, str]:
    """What reading each prefix returns, as the store's get_tree_of_anyone does."""
    return {k: v for k, v in store.items() if k.startswith(tuple(prefixes))}


def store_of(scenario) -> tuple[dict[str, str], str, str]:
    old, ours, (tp, jp), setup = scenario
    return old_kv(old, tp, jp, setup) | our_kv(ours, tp, jp) | foreign_kv(tp, jp), tp, jp


@FAST
@given(scenarios())
def test_planning_on_the_reads_is_planning_on_the_whole_store(scenario):
    store, tp, jp = store_of(scenario)
    whole = plan_kv_migration(store, traefik_prefix=tp, jupyterhub_prefix=jp)
    probed = under(store, kv_migration_probe(tp, jp))
    if not probed:
        assert whole == Migration()
        return
    read = probed | under(store, kv_migration_reads(tp, jp))
    assert plan_kv_migration(read, traefik_prefix=tp, jupyterhub_prefix=jp) == whole
    # the shell deletes the old keys it read, one by one
    subtrees = tuple(whole.kv_removal_keys(tp, jp))
    deleted = [k for k in read if k.startswith(subtrees)]
    assert deleted == [k for k in store if k.startswith(subtrees)]


@FAST
@given(scenarios())
def test_after_the_takeover_the_probe_finds_only_other_tools_look_alikes(scenario):
    store, tp, jp = store_of(scenario)
    plan = plan_kv_migration(store, traefik_prefix=tp, jupyterhub_prefix=jp)
    after = apply_kv(store, plan, tp, jp)
    assert set(under(after, kv_migration_probe(tp, jp))) <= set(foreign_kv(tp, jp))


@FAST
@given(st.lists(good_routespecs, max_size=6, unique=True), PREFIXES)
def test_the_probe_reads_nothing_of_ours(specs, prefixes):
    tp, jp = prefixes
    ours = [Route(s, "http://127.0.0.1:7000", {"n": 1}) for s in specs]
    assert under(our_kv(ours, tp, jp), kv_migration_probe(tp, jp)) == {}


def test_the_probe_finds_every_kind_the_old_project_writes():
    # each kind alone is found: a Hub killed mid-write can leave any of them
    store = old_kv([("/user/alice/", "http://127.0.0.1:9001", {"user": "alice"})])
    for key in store:
        assert under({key: store[key]}, kv_migration_probe("traefik", "jupyterhub")), key
