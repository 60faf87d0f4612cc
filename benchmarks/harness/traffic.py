"""Requests: what the routes point at, one request to see what answers, and
``wrk`` loads. Everything goes to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import free_port

from .procs import LOAD_CPU, OWN_PIDS, cpu_seconds, cpu_times, own_cpu

HERE = Path(__file__).resolve().parent.parent
BACKEND_JS = HERE / "backend.js"
WRK_LUA = HERE / "wrk_report.lua"
#: what :class:`ProbeBackend` answers
PROBE_BODY = "bench-backend-ok"


def get_body(url: str, timeout: float = 5.0, host: str | None = None) -> str | None:
    """The body of a 200 answer to GET ``url`` (one request, no retry), else None."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return body.decode(errors="replace") if response.status == 200 else None


def wait_for_body(url: str, body: str, timeout: float, host: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_body(url, 1.0, host) == body:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer {body!r} within {timeout:.0f}s")


async def probe(public_url: str, path: str, timeout: float = 5.0) -> bool:
    """True if GET public_url+path reaches a :class:`ProbeBackend`."""
    return await asyncio.to_thread(get_body, public_url + path, timeout) == PROBE_BODY


class ProbeBackend:
    """The routes' target in the measuring process: a minimal HTTP server
    answering every request with PROBE_BODY."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = PROBE_BODY.encode()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start(self) -> ProbeBackend:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class NodeBackend:
    """``backend.js`` on the load CPU, fast enough that the proxy in front of
    it sets the request rate: one port per name, each answering with its name."""

    def __init__(self, *names: str) -> None:
        self.ports = {name: free_port() for name in names}
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> NodeBackend:
        args = [f"{name}={port}" for name, port in self.ports.items()]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(LOAD_CPU), "node", str(BACKEND_JS), *args],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        OWN_PIDS.add(self.process.pid)
        for name in self.ports:
            wait_for_body(self.url(name) + "/", name, timeout=10)
        return self

    def stop(self) -> None:
        if self.process is not None:
            OWN_PIDS.discard(self.process.pid)
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def wrk(
    url: str,
    duration: float,
    connections: int = 50,
    threads: int = 1,
    pid: int | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """One bounded wrk run on the load CPU: req/s, latency percentiles (ms),
    errors, load, and what other processes took of the CPUs meanwhile.

    With the proxy's pid, also its CPU time per request: unlike req/s, that
    hardly moves when other processes share the proxy's core, so it is the
    number to compare on a busy machine (capacity = 1 s / CPU per request).
    """
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pid)
    ours = OWN_PIDS | ({pid} if pid else set())
    machine_before, own_before = cpu_times(), own_cpu(ours)
    command = ["taskset", "-c", str(LOAD_CPU), "wrk", f"-t{threads}", f"-c{connections}",
               f"-d{duration:g}s", "--timeout", "5s", "-s", str(WRK_LUA),
               *(["-H", f"Host: {host}"] if host else []), url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.split(" ", 1)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    cpu_after = cpu_seconds(pid)
    machine_after, own_after = cpu_times(), own_cpu(ours)
    # what other processes took of the two CPUs while wrk ran: the noise of this run
    total = machine_after[1] - machine_before[1]
    others = (machine_after[0] - machine_before[0] - (own_after - own_before)) / max(1e-9, total)
    cpu_us = (
        1e6 * (cpu_after - cpu_before) / raw["requests"]
        if cpu_before is not None and cpu_after is not None and raw["requests"]
        else None
    )
    return {
        "proxy_cpu_us_per_req": cpu_us,
        "capacity_rps": 1e6 / cpu_us if cpu_us else None,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "requests": raw["requests"],
        "errors": errors,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "others_cpu_share": max(0.0, others),
    }
