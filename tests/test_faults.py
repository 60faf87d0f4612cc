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

from .instruments import RouterHidingFaultTransport, spying
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
    """The file is whole: it parses, it holds the Hub's API router, and
    routers, services and route records agree."""
    document = load_config(path)
    routers = document.get("http", {}).get("routers", {})
    services = document.get("http", {}).get("services", {})
    records = document.get("jupyterhub", {}).get("routes", {})
    assert f"{namespace}-traefik-api" in routers, f"{path}: no API router"
    for name, raw in records.items():
        route = core.decode_route(raw)
        assert core.route_name(route.routespec, namespace) == name
        assert routers[name]["rule"] == core.traefik_rule(route.routespec)
        assert services[name]["loadBalancer"]["servers"] == [{"url": route.target}]
    # every router hangs somewhere: the route tree's buckets are in the same file
    for name, router in routers.items():
        for parent in router.get("parentRefs", []):
            assert parent in routers, f"{path}: {name} hangs under missing {parent}"
    tree = f"{namespace}{core.TREE_MARK}"
    ours = {
        n
        for n in routers
        if n.startswith(namespace) and not n.endswith("traefik-api") and not n.startswith(tree)
    }
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
                [
                    sys.executable,
                    str(script),
                    str(dynamic),
                    proxy.traefik_api_url,
                    proxy.traefik_api_password,
                    backends["a"].url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            # let it get going, then kill it at a random moment
            first = hammer.stdout.readline()
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            hammer.kill()
            out, err = hammer.communicate()
            # it printed the number of each burst it finished: it did write
            bursts = (first + out).split()
            assert bursts and int(bursts[-1]) > 0, f"the hammer wrote nothing: {err.decode()}"
            print(f"round {round_}: the hammer finished {int(bursts[-1])} bursts")
            count = check_consistent(dynamic)
            # a new proxy object picks the file up, and removes stale temp files
            later = TraefikFileProviderProxy(
                dynamic_config_file=str(dynamic),
                should_start=False,
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
        "file",
        request,
        tmp_path,
        public_url=first.public_url,
        traefik_api_url=first.traefik_api_url,
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


READER = textwrap.dedent(
    """
    import hashlib, os, sys
    path, snapshots, stop = sys.argv[1:]
    reads, seen = 0, set()
    while not os.path.exists(stop):
        with open(path, "rb") as f:
            data = f.read()
        reads += 1
        digest = hashlib.sha1(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            with open(os.path.join(snapshots, digest + ".toml"), "wb") as f:
                f.write(data)
    print(reads, flush=True)
    """
)


async def test_readers_never_see_a_partly_written_file(request, tmp_path, backends):
    """While writes are in flight, another process reading the file in a
    tight loop (as traefik does) only ever sees whole versions of it."""
    proxy = make_proxy("file", request, tmp_path / "hub")
    await proxy.start()
    snapshots, stop = tmp_path / "snapshots", tmp_path / "stop"
    snapshots.mkdir()
    script = tmp_path / "reader.py"
    script.write_text(READER)
    target = backends["a"].url
    try:
        # a file of a few hundred kB, so that each write takes a while
        await asyncio.gather(
            *(proxy.add_route(f"/user/r{i}/", target, {"pad": "x" * 500}) for i in range(300))
        )
        reader = subprocess.Popen(
            [sys.executable, str(script), proxy.dynamic_config_file, str(snapshots), str(stop)],
            stdout=subprocess.PIPE,
        )
        await asyncio.sleep(0.2)  # the reader is up
        rng = random.Random(99)
        for i in range(40):
            await asyncio.gather(
                *(
                    proxy.add_route(f"/user/r{rng.randrange(400)}/", target, {"i": i})
                    for _ in range(rng.randrange(1, 5))
                ),
                *(proxy.delete_route(f"/user/r{rng.randrange(400)}/") for _ in range(2)),
            )
        stop.touch()
        reads = int(reader.communicate(timeout=10)[0])
    finally:
        await proxy.stop()
    versions = sorted(snapshots.iterdir())
    print(f"{reads} reads saw {len(versions)} distinct versions of the file")
    assert reads > 0
    assert len(versions) > 10, "the reader saw too few versions: were writes in flight?"
    for version in versions:
        check_consistent(version)


async def test_a_route_traefik_never_serves_fails_alone_in_its_batch(request, tmp_path, backends):
    """One route of a batch is never confirmed (RouterHidingFaultTransport hides its
    router): its caller gets a TimeoutError naming it, the others succeed."""
    proxy = make_proxy("file", request, tmp_path)
    # the last route of a large batch is the one confirmation polls first
    bad = "/user/never-served/"
    hidden = f"{core.route_name(bad, proxy.traefik_namespace)}@file"
    proxy._api_transport = RouterHidingFaultTransport(hidden)
    await proxy.start()
    try:
        proxy.check_route_timeout = 1.5
        good = [f"/user/good{i}/" for i in range(6)]
        with spying(proxy._api, "wait_for_live") as (confirmations,):
            results = await asyncio.gather(
                *(proxy.add_route(spec, backends["a"].url, {}) for spec in [*good, bad]),
                return_exceptions=True,
            )
        names = [[e.name for e in expected] for (expected,), _ in confirmations.calls]
        batch = next(n for n in names if hidden.split("@")[0] in n)
        assert len(batch) > 1, "the route that is never served was not in a batch of others"
        assert results[:-1] == [None] * len(good), results
        assert isinstance(results[-1], TimeoutError), results[-1]
        assert repr(bad) in str(results[-1])
        async with httpx.AsyncClient() as client:
            for spec in good:
                assert (await client.get(proxy.public_url + spec)).json()["backend"] == "a"
    finally:
        await proxy.stop()
        await proxy._api_transport.aclose()


async def test_traefik_killed_at_each_restart_is_restarted_with_growing_delays(request, tmp_path, backends):
    """SIGKILL traefik, then each restarted traefik before it serves: the
    supervisor waits 0.5 s, 1 s, 2 s, and the next restart serves again."""
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    supervisor = proxy._supervisor
    try:
        await proxy.add_route("/user/survivor/", backends["a"].url, {})
        pid = proxy.traefik_process.pid
        for kill in range(3):
            os.kill(pid, signal.SIGKILL)
            if kill == 2:
                break
            deadline = time.monotonic() + 10
            while proxy.traefik_process is None or proxy.traefik_process.pid == pid:
                assert time.monotonic() < deadline, "traefik was not restarted"
                await asyncio.sleep(0.002)
            pid = proxy.traefik_process.pid
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 15
            while True:
                assert time.monotonic() < deadline, "route not served again within 15 s"
                try:
                    response = await client.get(proxy.public_url + "/user/survivor/x")
                    if response.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
    finally:
        await proxy.stop()
    assert list(supervisor.restart_delays) == [0.5, 1, 2]
