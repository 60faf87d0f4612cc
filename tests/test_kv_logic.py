"""TKvProxy's own logic, without servers: it writes the core's plan, retries a
store that does not answer, gives up by its deadline naming the store (never
its credentials), and restores the Hub's own config after an outage or a
store that lost its keys. The store is tests.memory_store.InMemoryStore; the
same behaviour against real stores is in test_kv.py and test_store_outage.py.
"""

from __future__ import annotations

import logging
import time

import pytest

from traefik_proxy import core
from traefik_proxy.kv import KVStoreUnavailable
from traefik_proxy.stores.base import url_label, url_secrets

from .memory_store import InMemoryKvProxy, InMemoryStore

SECRET = "s3cret-pass"
#: how much later than its deadline a failing call may return on a loaded machine
MARGIN = 1.0


def make(store: InMemoryStore | None = None, timeout: float = 1.0, **traits) -> InMemoryKvProxy:
    proxy = InMemoryKvProxy(
        store or InMemoryStore(password=SECRET),
        check_route_timeout=timeout,
        traefik_api_hashed_password="$2b$04$hash",
        **traits,
    )
    proxy.log = logging.getLogger("traefik_proxy.test.memory")
    return proxy


def adds(*paths: str, settings=core.Settings()) -> core.Changes:
    routes = [core.make_route(p, "http://127.0.0.1:9", {"p": p}) for p in paths]
    return core.changes_for([core.Op("add", r.routespec, r) for r in routes], settings)


def deletes(*paths: str, settings=core.Settings()) -> core.Changes:
    return core.changes_for([core.Op("delete", p) for p in paths], settings)


def setup_keys(proxy) -> dict[str, str]:
    return proxy.kv_layout.traefik_keys(proxy._generate_traefik_dynamic_config())


def wrote_setup_after(store: InMemoryStore, proxy, call: int) -> bool:
    """Whether the Hub's own keys were all set by the calls after index ``call``."""
    written = {}
    for kind, payload in store.calls[call:]:
        if kind == "set":
            written.update(payload)
    return setup_keys(proxy).items() <= written.items()


# ---------------------------------------------------------------- the plan


async def test_writes_follow_the_core_plan_within_the_store_limits():
    store = InMemoryStore(limits=core.TxnLimits(max_ops=7, max_bytes=900))
    proxy = make(store)
    changes = adds(*(f"/user/u{i}/" for i in range(6)))
    await proxy._apply_changes(changes)
    to_set, _ = core.kv_keys(changes, proxy.kv_layout)
    planned = core.plan_set(to_set, proxy.kv_layout, store.limits)
    assert [payload for _, payload in store.calls] == planned
    assert len(planned) > 1
    assert (proxy.kv_max_txn_ops, proxy.kv_max_txn_bytes) == (7, 900)

    store.calls.clear()
    gone = deletes(*(f"/user/u{i}/" for i in range(6)))
    await proxy._apply_changes(gone)
    _, to_delete = core.kv_keys(gone, proxy.kv_layout)
    assert [p for _, p in store.calls] == core.plan_delete(to_delete, proxy.kv_layout, store.limits)
    assert store.data == {}


async def test_records_are_read_back_by_route_name():
    proxy = make()
    await proxy._apply_changes(adds("/a/", "/b/"))
    records = await proxy._get_jupyterhub_dynamic_config()
    names = {core.route_name(p) for p in ("/a/", "/b/")}
    assert set(records) == names
    for name in names:
        assert await proxy._get_route_record(name) == records[name]
    assert await proxy._get_route_record("jupyterhub-missing") is None
    traefik = await proxy._get_traefik_dynamic_config()
    assert set(traefik["http"]["routers"]) == names


async def test_a_deletion_cut_short_leaves_every_router_with_its_record():
    store = InMemoryStore(limits=core.TxnLimits(max_ops=2))
    proxy = make(store)
    paths = [f"/cut/u{i}/" for i in range(3)]
    await proxy._apply_changes(adds(*paths))
    store.go_down_after(1)
    with pytest.raises(KVStoreUnavailable):
        await proxy._apply_changes(deletes(*paths))
    store.go_down(0)
    store._fail_after = None
    records = await proxy._get_jupyterhub_dynamic_config()
    routers = (await proxy._get_traefik_dynamic_config())["http"]["routers"]
    assert set(routers) <= set(records)
    assert set(records) == {core.route_name(p) for p in paths}


# ---------------------------------------------------------------- outages


async def test_a_short_outage_is_retried_and_the_setup_written_again(caplog):
    store = InMemoryStore()
    proxy = make(store, timeout=5)
    await proxy._setup_traefik_dynamic_config()
    store.go_down(0.3)
    started = time.monotonic()
    caplog.set_level(logging.INFO)
    await proxy._apply_changes(adds("/user/alice/"))
    assert 0.3 <= time.monotonic() - started < proxy.check_route_timeout
    assert store.attempts > 2
    # whatever answered after the outage may have lost the Hub's own config
    assert wrote_setup_after(store, proxy, 1)
    assert "again" in caplog.text
    assert core.route_name("/user/alice/") in await proxy._get_jupyterhub_dynamic_config()


@pytest.mark.parametrize("call", ["write", "read"])
async def test_an_outage_past_the_deadline_names_the_store_and_no_secret(call, caplog):
    store = InMemoryStore("memory://hub:" + SECRET + "@in-memory", password=SECRET)
    proxy = make(store, timeout=1.0)
    store.go_down(60)
    started = time.monotonic()
    with pytest.raises(KVStoreUnavailable) as info:
        if call == "write":
            await proxy._apply_changes(adds("/user/bob/"))
        else:
            await proxy._get_jupyterhub_dynamic_config()
    assert time.monotonic() - started < 1.0 + MARGIN
    message = str(info.value)
    assert message.startswith(f"memory at memory://in-memory is unreachable: the {call} failed ")
    assert "memory_url" in message and "connection refused" in message
    assert store.attempts > 1 and f"failed {store.attempts} times" in message
    assert SECRET not in message and SECRET not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_a_store_that_never_answers_fails_by_the_deadline():
    store = InMemoryStore()
    proxy = make(store, timeout=1.0)
    store.hang()
    started = time.monotonic()
    with pytest.raises(KVStoreUnavailable, match=r"no answer within 0\.\ds"):
        await proxy._get_jupyterhub_dynamic_config()
    assert time.monotonic() - started < 1.0 + MARGIN
    assert store.attempts == 1


async def test_an_answer_that_is_not_an_outage_is_raised_at_once():
    store = InMemoryStore()
    proxy = make(store, timeout=5)
    store.refuse(PermissionError("permission denied"))
    started = time.monotonic()
    with pytest.raises(PermissionError, match="permission denied"):
        await proxy._apply_changes(adds("/user/carol/"))
    assert time.monotonic() - started < MARGIN
    assert store.attempts == 1
    assert not proxy._kv_setup_lost


# ---------------------------------------------------------------- restore


async def test_a_store_that_lost_its_keys_gets_the_setup_back(caplog):
    store = InMemoryStore()
    proxy = make(store)
    caplog.set_level(logging.WARNING)
    await proxy._setup_traefik_dynamic_config()
    assert "lost every key" not in caplog.text  # a first write is no loss
    await proxy._apply_changes(adds("/user/dave/"))
    store.lose_everything()
    calls = len(store.calls)
    await proxy._apply_changes(adds("/user/erin/"))
    assert caplog.text.count("lost every key") == 1
    assert "memory at memory://in-memory lost every key" in caplog.text
    assert wrote_setup_after(store, proxy, calls)
    assert setup_keys(proxy).items() <= store.data.items()
    assert not proxy._kv_setup_lost


async def test_a_failed_restore_is_tried_again_with_the_next_change():
    store = InMemoryStore()
    proxy = make(store, timeout=0.5)
    await proxy._setup_traefik_dynamic_config()
    # keys gone without the store saying so (e.g. etcd restored from an old backup)
    store.data.clear()
    store.go_down(60)
    with pytest.raises(KVStoreUnavailable):
        await proxy._apply_changes(adds("/user/fay/"))
    assert proxy._kv_setup_lost
    store.go_down(0)
    calls = len(store.calls)
    await proxy._apply_changes(adds("/user/fay/"))
    # the restore rides along with the change: one write, setup included
    assert wrote_setup_after(store, proxy, calls)
    assert len(store.calls) == calls + 1
    assert setup_keys(proxy).items() <= store.data.items()
    assert not proxy._kv_setup_lost


async def test_close_releases_the_store_and_the_next_call_makes_it_again():
    store = InMemoryStore()
    proxy = make(store)
    assert proxy.kv_store is store
    await proxy._close()
    assert store.closed == 1
    await proxy._get_jupyterhub_dynamic_config()
    assert proxy.kv_store is store


# ---------------------------------------------------------------- labels


def test_store_label_and_secrets_from_the_url():
    url = "redis://hub:p%40ss@example.org:6380/2"
    assert url_label("redis", url) == "redis at redis://example.org:6380/2"
    assert set(url_secrets(url, "other", "")) == {"other", "p%40ss", "p@ss"}
    assert url_secrets("http://127.0.0.1:2379") == ()
