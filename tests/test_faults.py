"""Faults survived: traefik killed, the Hub killed mid-write."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from traefik_proxy import core
from traefik_proxy.fileprovider import TraefikFileProviderProxy
from traefik_proxy.files import load_config

from .proxies import make_proxy


async def test_killed_traefik_is_restarted_and_serves_again(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    try:
        await proxy.add_route("/user/survivor/", backends["a"].url, {})
        old = proxy.traefik_process
        os.kill(old.pid, signal.SIGKILL)
        killed = time.monotonic()
        async with httpx.AsyncClient() as client:
            while True:
                assert time.monotonic() - killed < 15, "route not served again within 15 s"
                try:
                    response = await client.get(proxy.public_url + "/user/survivor/x")
                    if response.status_code == 200 and response.json()["backend"] == "a":
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        recovered = time.monotonic() - killed
        print(f"route served again {recovered:.2f}s after SIGKILL of traefik")
        assert proxy.traefik_process.pid != old.pid
        # and the restarted traefik takes new routes
        await proxy.add_route("/user/after/", backends["b"].url, {})
        new_pid = proxy.traefik_process.pid
    finally:
        await proxy.stop()
    for pid in (old.pid, new_pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"traefik pid {pid} still running after stop()")


HAMMER = textwrap.dedent(
    """
    import asyncio, random, sys
    from traefik_proxy.fileprovider import TraefikFileProviderProxy

    async def main(dynamic, api_url, password, target):
        proxy = TraefikFileProviderProxy(
            dynamic_config_file=dynamic, should_start=False,
            traefik_api_url=api_url, traefik_api_password=password,
        )
        i = 0
        while True:
            i += 1
            burst = [proxy.add_route(f"/user/h{random.randrange(40)}/", target, {"i": i})
                     for _ in range(random.randrange(1, 8))]
            burst += [proxy.delete_route(f"/user/h{random.randrange(40)}/")
                      for _ in range(random.randrange(0, 4))]
            await asyncio.gather(*burst)
            print(i, flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


def check_consistent(path, namespace="jupyterhub") -> int:
    """The file parses, and routers, services and route records agree."""
    document = load_config(path)
    routers = document.get("http", {}).get("routers", {})
    services = document.get("http", {}).get("services", {})
    records = document.get("jupyterhub", {}).get("routes", {})
    for name, raw in records.items():
        route = core.decode_route(raw)
        assert core.route_name(route.routespec, namespace) == name
        assert routers[name]["rule"] == core.traefik_rule(route.routespec)
        assert services[name]["loadBalancer"]["servers"] == [{"url": route.target}]
    ours = {n for n in routers if n.startswith(namespace) and not n.endswith("traefik-api")}
    assert ours == set(records)
    assert set(services) == set(records)
    return len(records)


async def test_hub_killed_mid_write_leaves_a_whole_file(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    dynamic = tmp_path / "rules.toml"
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    rng = random.Random(1234)
    try:
        for round_ in range(5):
            hammer = subprocess.Popen(
                [sys.executable, str(script), str(dynamic), proxy.traefik_api_url,
                 proxy.traefik_api_password, backends["a"].url],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            # let it get going, then kill it at a random moment
            hammer.stdout.readline()
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            hammer.kill()
            hammer.wait()
            count = check_consistent(dynamic)
            # a new proxy object picks the file up, and removes stale temp files
            later = TraefikFileProviderProxy(
                dynamic_config_file=str(dynamic), should_start=False,
                traefik_api_url=proxy.traefik_api_url,
                traefik_api_password=proxy.traefik_api_password,
            )
            routes = await later.get_all_routes()
            assert len(routes) == count
            assert not list(tmp_path.glob(".rules.toml.*.tmp"))
            await later._close()
        # the proxy that started traefik still works on the same file
        await proxy.add_route("/user/final/", backends["b"].url, {})
        async with httpx.AsyncClient() as client:
            assert (await client.get(proxy.public_url + "/user/final/")).json()["backend"] == "b"
    finally:
        await proxy.stop()


async def test_traefik_left_by_a_killed_hub_is_replaced(request, tmp_path, backends):
    first = make_proxy("file", request, tmp_path)
    await first.start()
    leftover = first.traefik_process
    # the Hub dies without stopping traefik: forget the process, keep it running
    supervisor = first._supervisor
    supervisor._stopping = True
    supervisor._watch_task.cancel()
    supervisor.process = None
    await first._close()

    second = make_proxy(
        "file", request, tmp_path,
        public_url=first.public_url, traefik_api_url=first.traefik_api_url,
    )
    await second.start()
    try:
        assert await asyncio.wait_for(leftover.wait(), 10) is not None
        assert second.traefik_process.pid != leftover.pid
        await second.add_route("/user/new-hub/", backends["a"].url, {})
        async with httpx.AsyncClient() as client:
            assert (await client.get(second.public_url + "/user/new-hub/")).json()["backend"] == "a"
    finally:
        await second.stop()


async def test_busy_port_is_a_clear_error(request, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proxy = make_proxy("file", request, tmp_path, traefik_api_url=f"http://127.0.0.1:{port}")
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
            await proxy.start()
        assert proxy.traefik_process is None
