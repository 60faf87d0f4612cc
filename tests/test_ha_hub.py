"""A real JupyterHub on a 3-member etcd cluster with two Traefik replicas:
users spawn while one etcd member and one replica are dead.

The Hub (tests/hub_process.py) runs ``traefik_etcd`` with every member in
``etcd_url``; it starts Traefik A itself, and Traefik B, run by the test as an
operator would, reads the same cluster and is in
``traefik_replica_api_urls``. With the member the Hub talks to and B both
SIGKILLed, every spawn succeeds and every server answers through A; B,
started again, serves them all.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from traefik_proxy.etcd import TraefikEtcdProxy

from .clusters import EtcdCluster
from .ha_support import cluster_proxy, etcd_cluster  # noqa: F401 (the module's cluster)
from .hub_process import HubProcess
from .servers import start_traefik, stop_process

USERS = ["ada", "grace", "edsger"]
PASSWORD = "test-password-" + secrets.token_hex(4)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the Hub's child processes in /proc"
)


@pytest.fixture
def cluster(etcd_cluster):
    return etcd_cluster


def hub_config(cluster: EtcdCluster, replica: TraefikEtcdProxy) -> str:
    """The lines that put the demo Hub on the cluster, with replica B."""
    return f"""
import os
run = os.environ["DEMO_RUN_DIR"]
c.JupyterHub.proxy_class = "traefik_etcd"
c.TraefikEtcdProxy.etcd_url = {cluster.etcd_url!r}
c.TraefikEtcdProxy.kv_traefik_prefix = {replica.kv_traefik_prefix!r}
c.TraefikEtcdProxy.kv_jupyterhub_prefix = {replica.kv_jupyterhub_prefix!r}
c.TraefikEtcdProxy.static_config_file = os.path.join(run, "traefik.toml")
c.TraefikEtcdProxy.traefik_pid_file = os.path.join(run, "traefik.pid")
c.TraefikEtcdProxy.traefik_api_url = "http://127.0.0.1:" + os.environ["DEMO_TRAEFIK_API_PORT"]
c.TraefikEtcdProxy.traefik_replica_api_urls = [{replica.traefik_api_url!r}]
c.TraefikEtcdProxy.check_route_timeout = 20
c.JupyterHub.load_roles[0]["scopes"].append("admin:users")
"""


def reachable(public_url: str, user: str, headers: dict[str, str]) -> bool:
    """The user's server answers its API through the Traefik at ``public_url``."""
    try:
        with httpx.Client(base_url=public_url, trust_env=False, timeout=10) as client:
            return client.get(f"/user/{user}/api/status", headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


def hub_health(public_url: str) -> bool:
    try:
        with httpx.Client(base_url=public_url, trust_env=False, timeout=5) as client:
            return client.get("/hub/health").status_code == 200
    except httpx.HTTPError:
        return False


def test_spawns_with_a_member_and_a_replica_down(cluster, tmp_path):
    # B: its own ports; its API router and auth come from the store, written by the Hub
    replica = cluster_proxy(
        TraefikEtcdProxy,
        tmp_path / "b",
        etcd_url=cluster.etcd_url,
        should_start=False,
        traefik_api_password="unused-here",
    )
    b = [start_traefik(replica)]
    (tmp_path / "hub").mkdir()
    try:
        with HubProcess(tmp_path / "hub", PASSWORD, hub_config(cluster, replica)) as hub:
            _spawn_through_failures(cluster, hub, replica, b)
            hub.stop()
    finally:
        for process in b:
            stop_process(process)


def _spawn_through_failures(cluster: EtcdCluster, hub: HubProcess, replica, b: list) -> None:
    hub.wait_ready()
    hub.wait_until(lambda: hub_health(replica.public_url), 20, "replica B serving the Hub")

    # the member the Hub talks to first, and replica B
    victim = next(iter(cluster.members))
    cluster.kill(victim)
    b[0].kill()
    b[0].wait()
    started = time.monotonic()
    with hub.client() as client:
        for user in USERS:
            assert client.post(f"/hub/api/users/{user}").status_code in (201, 409)

    def spawn(user: str) -> None:
        # a request answers after the spawn or after the Hub's 10 s slow-spawn limit
        with hub.client() as client:
            r = client.post(f"/hub/api/users/{user}/server")
            assert r.status_code in (201, 202), (r.status_code, r.text)

    with ThreadPoolExecutor(len(USERS)) as pool:
        list(pool.map(spawn, USERS))  # all at once, as users arrive

    def all_ready():
        return all((hub.servers(u).get("") or {}).get("ready") for u in USERS)

    hub.wait_until(all_ready, 90, "every server ready", interval=0.5)
    print(
        f"\nhub: {len(USERS)} spawns ready {time.monotonic() - started:.1f}s after "
        f"SIGKILL of etcd {victim} and replica B"
    )
    for user in USERS:
        assert reachable(hub.public_url, user, hub.auth_headers), user
    log = hub.log_text()
    noted = [line for line in log.splitlines() if "did not answer" in line or "refuses" in line]
    print("\n".join(noted))
    assert "did not answer" in log and "refuses connections" in log

    # B again: it reads the store and serves everyone
    again = time.monotonic()
    b.append(start_traefik(replica))
    hub.wait_until(
        lambda: all(reachable(replica.public_url, u, hub.auth_headers) for u in USERS),
        30,
        "replica B serving every user",
    )
    print(f"hub: replica B serves every server {time.monotonic() - again:.2f}s after its restart")
    cluster.restart(victim)
