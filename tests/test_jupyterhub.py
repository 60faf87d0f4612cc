"""End to end: a real JupyterHub with proxy_class "traefik_file" and a real
single-user server, driven over HTTP through Traefik's public port.

The Hub runs the demo configuration (examples/jupyterhub_config.py) in a
temporary directory on free ports, plus one API-only service whose token
starts, reaches and stops a user's server.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from .utils import free_port

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "jupyterhub_config.py"
USER = "alice"
PASSWORD = "test-password-" + secrets.token_hex(4)
SPAWN_TIMEOUT = 90

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the Hub's child processes in /proc"
)


def wait_until(condition, timeout: float, what: str, hub: subprocess.Popen, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        if hub.poll() is not None:
            raise AssertionError(f"jupyterhub exited with {hub.returncode} while waiting for {what}")
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def proc_state(pid: int) -> str | None:
    """The process's state letter, or None if it is gone (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(pid: int) -> dict[int, str]:
    """Direct children of a process: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = cmdline(int(entry.name)) or ""
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def route_records(rules: Path) -> dict[str, dict]:
    """The route records in the dynamic config file: {routespec: record}."""
    if not rules.exists():
        return {}
    document = tomllib.loads(rules.read_text())
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    return {r["routespec"]: r for r in map(json.loads, records.values())}


def test_jupyterhub_spawns_and_stops_through_traefik(tmp_path):
    run_dir = tmp_path / "run"
    public_url = f"http://127.0.0.1:{free_port()}"
    token = secrets.token_hex(32)
    rules = run_dir / "rules.toml"
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        f"load_subconfig({str(EXAMPLE_CONFIG)!r})\n"
        "c = get_config()\n"
        f"c.JupyterHub.services = [{{'name': 'e2e', 'api_token': {token!r}}}]\n"
        "c.JupyterHub.load_roles = [{'name': 'e2e', 'services': ['e2e'],\n"
        "    'scopes': ['servers', 'read:users', 'access:servers']}]\n"
        "c.TraefikProxy.check_route_timeout = 30\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        DEMO_RUN_DIR=str(run_dir),
        DEMO_PUBLIC_URL=public_url,
        DEMO_HUB_PORT=str(free_port()),
        DEMO_TRAEFIK_API_PORT=str(free_port()),
        DEMO_PASSWORD=PASSWORD,
        DEMO_BANNER="0",
    )
    log_path = tmp_path / "jupyterhub.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    seen: dict[int, str] = {}  # every child of the Hub we saw: traefik, the user's server
    try:
        _drive_hub(hub, public_url, token, rules, seen)
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=30) == 0, "jupyterhub did not exit cleanly on SIGTERM"
        assert any("traefik" in cmd for cmd in seen.values()), f"no traefik child seen: {seen}"
        wait_until_gone(seen, timeout=10)
    except BaseException:
        print(f"----- jupyterhub log ({log_path}) -----")
        print(log_path.read_text(errors="replace"))
        raise
    finally:
        _kill_leftovers(hub, seen)
    assert time.monotonic() - started < 110


def _drive_hub(hub, public_url, token, rules, seen):
    auth = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=public_url, trust_env=False, timeout=30) as client:
        # the Hub answers through traefik
        wait_until(
            lambda: _ok(client, "/hub/health"), 60, "the Hub answering through traefik", hub
        )
        seen.update(children(hub.pid))

        # log in with the demo password, as a browser would
        r = client.get("/hub/login")
        assert r.status_code == 200, r.text
        xsrf = client.cookies.get("_xsrf")
        assert xsrf, f"no _xsrf cookie: {client.cookies}"
        r = client.post(
            "/hub/login", data={"username": USER, "password": PASSWORD, "_xsrf": xsrf}
        )
        assert r.status_code == 302, (r.status_code, r.text)
        assert any(name.startswith("jupyterhub-session") for name in client.cookies), client.cookies

        # start the server; wait until the Hub says it is ready
        r = client.post(f"/hub/api/users/{USER}/server", headers=auth)
        assert r.status_code in (201, 202), (r.status_code, r.text)

        def ready():
            model = client.get(f"/hub/api/users/{USER}", headers=auth).json()
            server = model.get("servers", {}).get("")
            return server if server and server.get("ready") else None

        server = wait_until(ready, SPAWN_TIMEOUT, "the user's server ready", hub, interval=0.5)
        routespec = f"/user/{USER}/"
        assert server["url"] == routespec

        # its route is in the dynamic config file, and traefik sends requests there
        records = route_records(rules)
        assert routespec in records, records
        assert records[routespec]["data"]["user"] == USER
        r = client.get(f"{routespec}api/status", headers=auth)
        assert r.status_code == 200, (r.status_code, r.headers, r.text)
        status = r.json()
        assert "started" in status and "kernels" in status, status

        singleuser = {p: cmd for p, cmd in children(hub.pid).items() if "singleuser" in cmd}
        assert singleuser, f"no single-user server among the Hub's children: {children(hub.pid)}"
        seen.update(children(hub.pid))

        # stop it: the route goes, and the Hub handles the path again
        r = client.delete(f"/hub/api/users/{USER}/server", headers=auth)
        assert r.status_code in (202, 204), (r.status_code, r.text)
        wait_until(
            lambda: not client.get(f"/hub/api/users/{USER}", headers=auth).json()["servers"],
            60,
            "the server stopped",
            hub,
        )
        assert routespec not in route_records(rules)
        r = client.get(f"{routespec}api/status", headers=auth)
        # not jupyter-server's answer: the Hub's "log in / go to /hub/" redirect
        assert r.status_code in (302, 303, 424, 503), (r.status_code, r.headers, r.text)
        if r.is_redirect:
            location = r.headers["location"]
            assert location.startswith(f"/hub/user/{USER}/"), r.headers
            r = client.get(location, headers=auth)
            # the Hub's "server not running" answer
            assert r.status_code in (424, 503), (r.status_code, r.headers, r.text)
        wait_until_gone(singleuser, timeout=10)


def _ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_gone(pids: dict[int, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive = {p: cmd for p, cmd in pids.items() if proc_state(p)}
        if not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes left running: {alive}")
        time.sleep(0.1)


def _kill_leftovers(hub: subprocess.Popen, seen: dict[int, str]) -> None:
    """After a failure: the Hub and each child we saw, by pid (traefik has its own session)."""
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
    for pid, cmd in seen.items():
        if proc_state(pid) and cmdline(pid) == cmd:  # not a reused pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
