"""A real JupyterHub in a subprocess, for end-to-end tests.

The Hub runs the demo configuration (examples/jupyterhub_config.py) with
proxy_class "traefik_file", in its own directory and on free ports, plus one
API-only service whose token lets a test look at (and start or stop) users'
servers. Traefik and the users' servers are the Hub's children; teardown stops
the Hub with SIGTERM and checks that it took them down with it.
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

from .servers import free_port

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "jupyterhub_config.py"


def wait_until(
    condition, timeout: float, what: str, hub: subprocess.Popen | None = None, interval: float = 0.2
):
    """Poll ``condition`` until it returns something true; fail early if the Hub exits."""
    deadline = time.monotonic() + timeout
    while True:
        if hub is not None and hub.poll() is not None:
            raise AssertionError(f"jupyterhub exited ({hub.returncode}) while waiting for {what}")
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
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = cmdline(int(entry.name)) or ""
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def wait_until_gone(pids: dict[int, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive = {p: cmd for p, cmd in pids.items() if proc_state(p)}
        if not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes left running: {alive}")
        time.sleep(0.1)


def route_records(rules: Path) -> dict[str, dict]:
    """The route records in the dynamic config file: {routespec: record}."""
    if not rules.exists():
        return {}
    document = tomllib.loads(rules.read_text())
    records = (document.get("jupyterhub") or {}).get("routes") or {}
    return {r["routespec"]: r for r in map(json.loads, records.values())}


def environment_without_proxies() -> dict[str, str]:
    """This process's environment minus HTTP proxy settings: everything here is local."""
    return {
        k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }


class HubProcess:
    """The demo Hub behind traefik, in ``directory``, on free ports.

    Use it as a context manager: on the way out it stops the Hub (SIGTERM) and
    kills, by pid, whatever Hub child it saw that is still running; if the
    body raised, the Hub's log is printed first.
    """

    def __init__(
        self,
        directory: Path,
        password: str,
        extra_config: str = "",
        *,
        bind_url: str = "",
        public_url: str = "",
    ):
        self.directory = directory
        self.run_dir = directory / "run"
        self.rules = self.run_dir / "rules.toml"
        self.log_path = directory / "jupyterhub.log"
        # where traefik listens, and the URL users and the tests use (they
        # differ behind a name, as for HTTPS with Let's Encrypt)
        self.bind_url = bind_url or f"http://127.0.0.1:{free_port()}"
        self.public_url = public_url or self.bind_url
        self.password = password
        self.token = secrets.token_hex(32)
        self.extra_config = extra_config
        self.process: subprocess.Popen | None = None
        self.seen: dict[int, str] = {}  # every Hub child we saw: traefik, users' servers

    # --- lifecycle

    def start(self) -> None:
        config = self.directory / "jupyterhub_config.py"
        config.write_text(
            f"load_subconfig({str(EXAMPLE_CONFIG)!r})\n"
            "c = get_config()\n"
            f"c.JupyterHub.services = [{{'name': 'e2e', 'api_token': {self.token!r}}}]\n"
            "c.JupyterHub.load_roles = [{'name': 'e2e', 'services': ['e2e'],\n"
            "    'scopes': ['servers', 'read:users', 'access:servers']}]\n"
            "c.TraefikProxy.check_route_timeout = 30\n" + self.extra_config
        )
        env = environment_without_proxies()
        env.update(
            DEMO_RUN_DIR=str(self.run_dir),
            DEMO_PUBLIC_URL=self.bind_url,
            DEMO_HUB_PORT=str(free_port()),
            DEMO_TRAEFIK_API_PORT=str(free_port()),
            DEMO_PASSWORD=self.password,
            DEMO_BANNER="0",
            # the etcd client's gRPC registers fork handlers; JupyterHub's local
            # spawner forks (preexec_fn), and once in a while a child died in
            # them before exec ("epoll_wait error: Bad file descriptor", seen in
            # test_ha_hub): single-user servers need no gRPC
            GRPC_ENABLE_FORK_SUPPORT="false",
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the Hub answers /hub/health through traefik's public port."""

        def healthy():
            try:
                with self.client(timeout=5) as client:
                    return client.get("/hub/health").status_code == 200
            except httpx.HTTPError:
                return False

        self.wait_until(healthy, timeout, "the Hub answering through traefik")
        self.note_children()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM; the Hub must exit 0 and take traefik and users' servers with it."""
        assert self.process is not None
        self.note_children()
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=timeout) == 0, "jupyterhub did not exit cleanly on SIGTERM"
        assert any("traefik" in cmd for cmd in self.seen.values()), f"no traefik child: {self.seen}"
        wait_until_gone(self.seen, timeout=10)

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            print(f"----- jupyterhub log ({self.log_path}) -----")
            print(self.log_text())
        self._kill_leftovers()

    # --- looking at it

    @property
    def auth_headers(self) -> dict[str, str]:
        """The e2e service's token, as a request header."""
        return {"Authorization": f"token {self.token}"}

    def client(self, *, token: bool = True, **kwargs) -> httpx.Client:
        """A client for traefik's public URL, authenticated as the e2e service.

        With ``token=False`` it sends no token by default (pass
        ``headers=hub.auth_headers`` per request): a browser-like client that
        authenticates with the cookies it collects, e.g. by logging in.
        """
        kwargs.setdefault("timeout", 30)
        return httpx.Client(
            base_url=self.public_url,
            trust_env=False,
            headers=self.auth_headers if token else None,
            **kwargs,
        )

    def wait_until(self, condition, timeout: float, what: str, interval: float = 0.2):
        return wait_until(condition, timeout, what, self.process, interval)

    def note_children(self) -> dict[int, str]:
        assert self.process is not None
        current = children(self.process.pid)
        self.seen.update(current)
        return current

    def servers(self, user: str) -> dict[str, dict]:
        """The user's servers as the Hub's REST API reports them: {name: model}."""
        with self.client() as client:
            r = client.get(f"/hub/api/users/{user}")
            r.raise_for_status()
            return r.json().get("servers") or {}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _kill_leftovers(self) -> None:
        """The Hub and each child we saw, by pid (traefik has its own session)."""
        hub = self.process
        if hub is None:
            return
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(hub.pid, signal.SIGKILL)
                hub.wait()
        for pid, cmd in self.seen.items():
            if proc_state(pid) and cmdline(pid) == cmd:  # not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
