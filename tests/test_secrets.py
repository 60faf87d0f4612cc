"""Secrets (the API password, store passwords) on error paths and in traefik's own output.

The success paths are checked where they run (test_fileprovider.py,
test_kv.py); here each error a user can meet is caused for real, and its
message and every log line are searched for the secret. Traefik's own
stdout/stderr is captured at DEBUG, its most talkative level.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from traefik_proxy.fileprovider import TraefikFileProviderProxy
from traefik_proxy.kv import KVStoreUnavailable
from traefik_proxy.traefik_process import find_traefik

from .proxies import make_proxy
from .utils import free_port


def assert_secret_absent(secret: str, *texts: str) -> None:
    assert secret, "no secret to look for"
    for text in texts:
        assert secret not in text, f"secret found in: {text[:300]!r}"


def external_hub(proxy, password: str, **overrides) -> TraefikFileProviderProxy:
    """A second Hub on the same traefik and file that sets up nothing itself."""
    return TraefikFileProviderProxy(
        should_start=False,
        enable_setup_dynamic_config=False,
        dynamic_config_file=proxy.dynamic_config_file,
        public_url=proxy.public_url,
        traefik_api_url=proxy.traefik_api_url,
        traefik_api_password=password,
        **overrides,
    )


async def test_api_password_stays_out_of_errors_and_logs(request, tmp_path, backends, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    right, wrong = proxy.traefik_api_password, "wrong-Pass-" + str(free_port())
    errors = []
    try:
        # a wrong password: traefik's API never answers 200 to it
        hub = external_hub(proxy, wrong, check_route_timeout=1)
        with pytest.raises(TimeoutError, match="HTTP 401") as refused:
            await hub.add_route("/user/x/", backends["a"].url, {})
        errors.append(repr(refused.value))
        await hub._close()

        # the password changed under a running Hub: its next confirmation is refused
        hub = external_hub(proxy, right)
        await hub.add_route("/user/before/", backends["a"].url, {})
        proxy.traefik_api_password, proxy.traefik_api_hashed_password = "rotated-" + wrong, ""
        proxy._generate_password_if_needed()
        await proxy._setup_traefik_dynamic_config()
        with pytest.raises(PermissionError, match="401") as rotated:
            await hub.add_route("/user/after/", backends["a"].url, {})
        errors.append(repr(rotated.value))
        await hub._close()
    finally:
        await proxy.stop()
    for secret in (right, wrong, proxy.traefik_api_password):
        assert_secret_absent(secret, caplog.text, *errors)


def unreachable_store_proxy(kind: str, port: int, secret: str):
    """A proxy of a key-value kind with ``secret`` as its store password (and,
    for Redis, in its URL too, percent-encoded), on a port nobody listens on."""
    if kind == "etcd":
        from traefik_proxy.etcd import TraefikEtcdProxy as cls

        traits = {"etcd_url": f"http://127.0.0.1:{port}", "etcd_username": "root", "etcd_password": secret}
    elif kind == "redis":
        from traefik_proxy.redis import TraefikRedisProxy as cls

        # in the URL too, where a redis password often is
        traits = {
            "redis_url": f"redis://hub:{quote(secret + '@url', safe='')}@127.0.0.1:{port}/0",
            "redis_username": "hub",
            "redis_password": secret,
        }
    else:
        from traefik_proxy.consul import TraefikConsulProxy as cls

        traits = {"consul_url": f"http://127.0.0.1:{port}", "consul_password": secret}
    return cls(should_start=False, traefik_api_password="x", check_route_timeout=1, **traits)


@pytest.mark.parametrize("kind", ["etcd", "redis", "consul"])
async def test_unreachable_store_error_names_the_store_not_its_password(kind, caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    secret = f"{kind}-Secret-{port}"
    proxy = unreachable_store_proxy(kind, port, secret)
    try:
        with pytest.raises(KVStoreUnavailable, match=f"127.0.0.1:{port}") as info:
            await proxy.get_all_routes()
    finally:
        await proxy._close()
    assert_secret_absent(secret, str(info.value), repr(info.value), caplog.text)


def unreachable_error_repeating(kind: str, text: str) -> Exception:
    """Fault injection, not a real client's error: the exception class the
    store's client raises when the store does not answer, with a message that
    repeats ``text`` (as a client library may repeat its connection URL)."""
    if kind == "etcd":
        import grpc

        # what etcd3 lets through from gRPC: a status code and its details
        class UnavailableRpcError(grpc.RpcError):
            def code(self):
                return grpc.StatusCode.UNAVAILABLE

            def details(self):
                return str(self)

        error = UnavailableRpcError
    elif kind == "redis":
        from redis.exceptions import ConnectionError as error
    else:
        from aiohttp import ClientConnectionError as error
    return error(f"cannot connect with {text}")


@pytest.mark.parametrize("kind", ["etcd", "redis", "consul"])
async def test_store_password_a_client_error_repeats_is_scrubbed(kind, caplog):
    """The client's own error reaches the log and KVStoreUnavailable without the
    password, in every form it was given (and, from a URL, decoded)."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    secret = f"{kind}-Secret-{port}"
    proxy = unreachable_store_proxy(kind, port, secret)
    url = getattr(proxy, f"{kind}_url")
    in_url = urlsplit(url).password  # as written, and decoded
    forms = {secret, *((in_url, unquote(in_url)) if in_url else ())}

    async def unreachable(prefix):
        raise unreachable_error_repeating(kind, f"{url} {' '.join(sorted(forms))}")

    proxy.kv_store.get_tree = unreachable
    try:
        with pytest.raises(KVStoreUnavailable, match=f"127.0.0.1:{port}") as info:
            await proxy._get_jupyterhub_dynamic_config()  # what get_all_routes reads
    finally:
        await proxy._close()
    assert "cannot connect with" in str(info.value), "the client's error was left out"
    assert "cannot connect with" in caplog.text
    # each form whole: the URL's password contains the other, so hiding the
    # shorter one first would leave the rest of the longer one ("***@url")
    for form in forms | {"@url", "%40url"} if in_url else forms:
        assert_secret_absent(form, str(info.value), repr(info.value), caplog.text)


def capturing_traefik(directory: Path) -> tuple[str, Path]:
    """A traefik_command that runs the real traefik with its stdout and
    stderr appended to a file; the exec keeps traefik's pid and signals."""
    output = directory / "traefik-output.log"
    wrapper = directory / "traefik-captured"
    traefik = shlex.quote(find_traefik("traefik"))
    wrapper.write_text(f'#!/bin/sh\nexec {traefik} "$@" >>{shlex.quote(str(output))} 2>&1\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), output


def store_auth(kind: str, server) -> dict[str, str]:
    if kind == "etcd":
        return {"etcd_url": server.url, "etcd_username": server.username, "etcd_password": server.password}
    if kind == "redis":
        return {"redis_url": server.url, "redis_username": server.username, "redis_password": server.password}
    return {"consul_url": server.url, "consul_password": server.password}


# the Consul with a token is the stand-in even beside a consul binary (consul_token_server)
@pytest.mark.parametrize("kind", ["file", "etcd", "redis", pytest.param("consul", id="consul-standin")])
async def test_traefiks_own_output_at_debug_holds_no_secret(kind, request, tmp_path, backends):
    command, output = capturing_traefik(tmp_path)
    overrides = {}
    if kind != "file":
        fixture = {"etcd": "etcd_auth_server", "redis": "redis_auth_server", "consul": "consul_token_server"}[
            kind
        ]
        overrides = store_auth(kind, request.getfixturevalue(fixture))
    proxy = make_proxy(
        kind,
        request,
        tmp_path / "hub",
        traefik_command=command,
        traefik_log_level="DEBUG",
        **overrides,
    )
    await proxy.start()
    try:
        await proxy.add_route("/user/alice/", backends["a"].url, {})
        async with httpx.AsyncClient(base_url=proxy.client.base_url) as client:
            wrong = await client.get("/api/rawdata", auth=(proxy.traefik_api_username, "x"))
            assert wrong.status_code == 401
        assert os.path.basename(os.readlink(f"/proc/{proxy.traefik_process.pid}/exe")) == "traefik"
    finally:
        await proxy.stop()
    text = output.read_text(errors="replace")
    assert "DBG" in text, f"traefik's debug output was not captured: {text[:300]!r}"
    secrets = [proxy.traefik_api_password, overrides.get(f"{kind}_password", "")]
    for secret in filter(None, secrets):
        assert_secret_absent(secret, text)
