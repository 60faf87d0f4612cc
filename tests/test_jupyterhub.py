"""End to end: a real JupyterHub with proxy_class "traefik_file" and a real
single-user server, driven over HTTP through Traefik's public port.

The Hub is a ``HubProcess`` (tests/hub_process.py): the demo configuration in a
temporary directory on free ports, plus one API-only service whose token
starts, reaches and stops a user's server.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from .hub_process import HubProcess, route_records, wait_until_gone

USER = "alice"
PASSWORD = "test-password-" + secrets.token_hex(4)
SPAWN_TIMEOUT = 90
TIME_LIMIT = 110  # seconds, Hub start to Hub exit

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the Hub's child processes in /proc"
)


def test_jupyterhub_spawns_and_stops_through_traefik(tmp_path):
    started = time.monotonic()
    with HubProcess(tmp_path, PASSWORD) as hub:
        hub.wait_ready()  # the Hub answers through traefik
        # one cookie-keeping client, as a browser; API calls add the service token
        with hub.client(token=False) as client:
            _drive_hub(hub, client)
        hub.stop()  # exit 0 on SIGTERM, traefik and the user's server gone with it
    assert time.monotonic() - started < TIME_LIMIT


def _log_in(client: httpx.Client) -> None:
    """Log in with the demo password, as a browser would (the user exists from then)."""
    r = client.get("/hub/login")
    assert r.status_code == 200, r.text
    xsrf = client.cookies.get("_xsrf")
    assert xsrf, f"no _xsrf cookie: {client.cookies}"
    r = client.post("/hub/login", data={"username": USER, "password": PASSWORD, "_xsrf": xsrf})
    assert r.status_code == 302, (r.status_code, r.text)
    assert any(name.startswith("jupyterhub-session") for name in client.cookies), client.cookies


def _drive_hub(hub: HubProcess, client: httpx.Client) -> None:
    auth = hub.auth_headers
    _log_in(client)

    # start the server; wait until the Hub says it is ready
    r = client.post(f"/hub/api/users/{USER}/server", headers=auth)
    assert r.status_code in (201, 202), (r.status_code, r.text)

    def ready():
        server = hub.servers(USER).get("")
        return server if server and server.get("ready") else None

    server = hub.wait_until(ready, SPAWN_TIMEOUT, "the user's server ready", interval=0.5)
    routespec = f"/user/{USER}/"
    assert server["url"] == routespec

    # its route is in the dynamic config file, and traefik sends requests there
    records = route_records(hub.rules)
    assert routespec in records, records
    assert records[routespec]["data"]["user"] == USER
    r = client.get(f"{routespec}api/status", headers=auth)
    assert r.status_code == 200, (r.status_code, r.headers, r.text)
    status = r.json()
    assert "started" in status and "kernels" in status, status

    current = hub.note_children()
    singleuser = {p: cmd for p, cmd in current.items() if "singleuser" in cmd}
    assert singleuser, f"no single-user server among the Hub's children: {current}"

    # stop it: the route goes, and the Hub handles the path again
    r = client.delete(f"/hub/api/users/{USER}/server", headers=auth)
    assert r.status_code in (202, 204), (r.status_code, r.text)
    hub.wait_until(lambda: not hub.servers(USER), 60, "the server stopped")
    assert routespec not in route_records(hub.rules)
    r = client.get(f"{routespec}api/status", headers=auth)
    # not jupyter-server's answer: the Hub's "log in / go to /hub/" redirect
    assert r.status_code in (302, 303, 424, 503), (r.status_code, r.headers, r.text)
    if r.is_redirect:
        # absolute when JupyterHub.public_url is set (the HTTPS test's Hub)
        location = r.headers["location"].removeprefix(hub.public_url)
        assert location.startswith(f"/hub/user/{USER}/"), r.headers
        r = client.get(location, headers=auth)
        # the Hub's "server not running" answer
        assert r.status_code in (424, 503), (r.status_code, r.headers, r.text)
    wait_until_gone(singleuser, timeout=10)


def test_one_line_turns_on_shards_for_a_real_hub(tmp_path):
    """``c.TraefikProxy.traefik_shards = 2`` in jupyterhub_config.py is enough:
    the Hub starts the front and two shard traefiks, a spawned server's route
    lives in a shard and is reached through the front, and once the server
    stops (its delete waits for the shard's next add, at most the delay) the
    Hub answers that path again; at exit every traefik is gone."""
    delay = 2
    extra = f"c.TraefikProxy.traefik_shards = 2\nc.TraefikProxy.traefik_shard_delete_delay = {delay}\n"
    with HubProcess(tmp_path, PASSWORD, extra_config=extra) as hub:
        hub.wait_ready()
        traefiks = {p: c for p, c in hub.note_children().items() if "traefik" in c}
        assert len(traefiks) == 3, traefiks
        auth = hub.auth_headers
        with hub.client(token=False) as client:
            _log_in(client)
            r = client.post(f"/hub/api/users/{USER}/server", headers=auth)
            assert r.status_code in (201, 202), (r.status_code, r.text)
            hub.wait_until(
                lambda: (hub.servers(USER).get("") or {}).get("ready"),
                SPAWN_TIMEOUT,
                "the user's server ready",
                interval=0.5,
            )
            routespec = f"/user/{USER}/"
            shard_files = sorted(hub.rules.parent.glob(f"{hub.rules.stem}.shard-*{hub.rules.suffix}"))
            assert len(shard_files) == 2, shard_files
            holders = [f.name for f in shard_files if routespec in route_records(f)]
            assert len(holders) == 1, holders  # in one shard
            assert routespec not in route_records(hub.rules)  # not in the front
            r = client.get(f"{routespec}api/status", headers=auth)
            assert r.status_code == 200 and "kernels" in r.json(), (r.status_code, r.text)
            r = client.delete(f"/hub/api/users/{USER}/server", headers=auth)
            assert r.status_code in (202, 204), (r.status_code, r.text)
            hub.wait_until(lambda: not hub.servers(USER), 60, "the server stopped")

            def hub_answers() -> bool:
                response = client.get(f"{routespec}api/status", headers=auth)
                return response.status_code in (302, 303, 424, 503)

            hub.wait_until(hub_answers, delay + 10, "the Hub answering the stopped server's path")
            assert not any(routespec in route_records(f) for f in shard_files)
        hub.stop()
    wait_until_gone(traefiks, timeout=10)
