"""Features no other JupyterHub proxy has together: Hub error pages, several
Hubs on one Traefik and one store."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import httpx
import pytest

from .proxies import make_proxy
from .servers import free_port, start_traefik, stop_process


async def test_error_pages_send_users_to_the_hub(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path, traefik_error_pages=True)
    proxy.hub = SimpleNamespace(host=backends["hub"].url, base_url="/hub/")
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        await proxy.add_route("/user/down/", f"http://127.0.0.1:{free_port()}", {"user": "down"})
        await proxy.add_route("/user/up/", backends["a"].url, {"user": "up"})
        async with httpx.AsyncClient(base_url=proxy.public_url) as client:
            down = await client.get("/user/down/lab")
            up = await client.get("/user/up/lab")
        # the Hub's error page, with the status Traefik saw
        assert down.status_code == 502
        assert down.json() == {**down.json(), "backend": "hub", "path": "/hub/error/502"}
        assert up.status_code == 200 and up.json()["backend"] == "a"
        # the Hub's own route never points at itself for errors
        name = next(
            n for n in (await proxy.client.get("/api/http/routers")).json() if n["rule"] == "PathPrefix(`/`)"
        )
        assert "middlewares" not in name
    finally:
        await proxy.stop()


async def test_error_pages_are_off_by_default(proxy, prefix):
    await proxy.add_route(f"{prefix}down/", f"http://127.0.0.1:{free_port()}", {})
    async with httpx.AsyncClient(base_url=proxy.public_url) as client:
        response = await client.get(f"{prefix}down/x")
    assert response.status_code == 502
    assert "Bad Gateway" in response.text


async def test_error_pages_need_the_hub(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, traefik_error_pages=True)
    with pytest.raises(ValueError, match="proxy.hub"):
        await proxy.start()


def test_pin_host_must_be_a_hostname(request, tmp_path):
    with pytest.raises(Exception, match="not a hostname"):
        make_proxy("file", request, tmp_path, traefik_pin_host="bad host/")


@pytest.mark.parametrize("kind", ["etcd", "redis"])
async def test_two_hubs_share_one_traefik_and_one_store(kind, request, tmp_path, backends):
    """Each Hub sees, replaces and deletes only its own routes; each host goes
    to its own Hub's servers."""
    first = make_proxy(
        kind,
        request,
        tmp_path / "a",
        traefik_namespace="hub-a",
        traefik_pin_host="a.example.org",
    )
    await first.start()
    second = make_proxy(
        kind,
        request,
        tmp_path / "b",
        should_start=False,
        traefik_api_url=first.traefik_api_url,
        traefik_api_password=first.traefik_api_password,
        public_url=first.public_url,
        traefik_namespace="hub-b",
        traefik_pin_host="b.example.org",
        kv_traefik_prefix=first.kv_traefik_prefix,  # one Traefik reads one root key
        kv_jupyterhub_prefix=f"jupyterhub-{uuid.uuid4().hex[:16]}",
    )
    try:
        for hub, backend in ((first, "hub"), (second, "b")):
            await hub.add_route("/", backends[backend].url, {"hub": True})
            await hub.add_route("/user/x/", backends["a" if hub is first else "b"].url, {"user": "x"})

        async def served(host: str, path: str) -> str | None:
            async with httpx.AsyncClient(base_url=first.public_url) as client:
                response = await client.get(path, headers={"Host": host})
            return response.json()["backend"] if response.status_code == 200 else None

        assert await served("a.example.org", "/user/x/lab") == "a"
        assert await served("b.example.org", "/user/x/lab") == "b"
        assert await served("a.example.org", "/hub/home") == "hub"
        assert await served("b.example.org", "/hub/home") == "b"
        assert await served("c.example.org", "/user/x/lab") is None

        assert set(await first.get_all_routes()) == {"/", "/user/x/"}
        assert set(await second.get_all_routes()) == {"/", "/user/x/"}
        assert (await first.get_route("/user/x/"))["target"] == backends["a"].url
        assert (await second.get_route("/user/x/"))["target"] == backends["b"].url

        await first.delete_route("/user/x/")
        assert await first.get_route("/user/x/") is None
        assert (await second.get_route("/user/x/"))["target"] == backends["b"].url
        assert await served("b.example.org", "/user/x/lab") == "b"
    finally:
        await second._close()
        await first.stop()


async def test_activity_tracking_feeds_jupyterhub(request, tmp_path, backends):
    from datetime import datetime

    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    proxy = make_proxy("file", request, tmp_path, traefik_track_activity=True, traefik_activity_interval=0.1)
    await proxy.start()
    try:
        for name in ("busy", "idle"):
            await proxy.add_route(f"/user/{name}/", backends["a"].url, {"user": name, "server_name": ""})
        routes = await proxy.get_all_routes()  # the first reading is the baseline
        assert "last_activity" not in routes["/user/busy/"]["data"]

        async def request_busy():
            async with httpx.AsyncClient(base_url=proxy.public_url) as client:
                assert (await client.get("/user/busy/api/status")).status_code == 200

        await request_busy()
        routes = await proxy.get_all_routes()
        first = routes["/user/busy/"]["data"]["last_activity"]
        assert first.endswith("Z")
        assert "last_activity" not in routes["/user/idle/"]["data"]
        # other data is untouched
        assert routes["/user/busy/"]["data"]["user"] == "busy"

        await asyncio.sleep(0.3)
        routes = await proxy.get_all_routes()
        assert routes["/user/busy/"]["data"]["last_activity"] == first  # no traffic, no move
        await request_busy()
        await asyncio.sleep(0.3)  # the background reading stamps it too
        second = (await proxy.get_all_routes())["/user/busy/"]["data"]["last_activity"]
        assert second > first
        assert "last_activity" not in (await proxy.get_all_routes())["/user/idle/"]["data"]
        # get_route stays exactly as added
        assert "last_activity" not in (await proxy.get_route("/user/busy/"))["data"]

        # JupyterHub's own activity update reads it (check_routes, which it
        # calls at the end, is recorded instead of run: no Hub app here)
        db = orm.new_session_factory("sqlite:///:memory:")()
        for name in ("busy", "idle"):
            user = orm.User(name=name)
            db.add(user)
            db.commit()
            db.add(orm.Spawner(user=user, name=""))
            db.commit()
        checked = []
        hub_like = SimpleNamespace(
            proxy=SimpleNamespace(
                get_all_routes=proxy.get_all_routes,
                check_routes=lambda *args: checked.append(args) or asyncio.sleep(0),
            ),
            db=db,
            log=proxy.log,
            active_user_window=3600,
            users={},
            _service_map={},
        )
        await JupyterHub.update_last_activity(hub_like)
        busy = orm.User.find(db, "busy")
        assert busy.last_activity == datetime.fromisoformat(second.replace("Z", "+00:00")).replace(
            tzinfo=None
        )
        assert orm.User.find(db, "idle").last_activity is None
        assert checked
    finally:
        await proxy.stop()


@pytest.mark.parametrize("kind", ["etcd"])
async def test_add_route_waits_for_every_replica(kind, request, tmp_path, backends):
    """Two traefik processes read one store; add_route returns when both serve."""
    import os
    import signal

    main = make_proxy(kind, request, tmp_path / "main")
    await main.start()
    # the replica: same store and prefixes, its own ports, run by the test
    replica_config = make_proxy(
        kind,
        request,
        tmp_path / "replica",
        should_start=False,
        traefik_api_password=main.traefik_api_password,
        kv_traefik_prefix=main.kv_traefik_prefix,
        kv_jupyterhub_prefix=main.kv_jupyterhub_prefix,
    )
    replica = start_traefik(replica_config)
    main.traefik_replica_api_urls = [replica_config.traefik_api_url]
    try:
        await replica_config._wait_for_api()  # it reads the API router from the store
        await main.add_route("/user/both/", backends["a"].url, {})

        # freeze the replica: add_route must wait for it, then finish once it runs
        os.kill(replica.pid, signal.SIGSTOP)
        adding = asyncio.create_task(main.add_route("/user/later/", backends["b"].url, {}))
        await asyncio.sleep(1.5)
        assert not adding.done(), "add_route returned while a replica could not serve the route"
        os.kill(replica.pid, signal.SIGCONT)
        await asyncio.wait_for(adding, 20)
        async with httpx.AsyncClient() as client:
            for public_url in (main.public_url, replica_config.public_url):
                response = await client.get(public_url + "/user/later/x")
                assert response.json()["backend"] == "b", public_url
    finally:
        os.kill(replica.pid, signal.SIGCONT)
        stop_process(replica)
        await replica_config._close()
        await main.stop()
