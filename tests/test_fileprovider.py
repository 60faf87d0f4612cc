"""File provider specifics: formats, permissions, TLS, a traefik run by someone else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl
import stat
import tomllib

import bcrypt
import httpx
import pytest
import trustme
import yaml
from traitlets import TraitError

from traefik_proxy.fileprovider import TraefikFileProviderProxy

from .proxies import make_proxy
from .servers import free_port, start_traefik, stop_process


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("suffix", ["toml", "yaml", "yml"])
async def test_formats_permissions_and_secrets(suffix, request, tmp_path, backends, caplog):
    dynamic = tmp_path / f"rules.{suffix}"
    proxy = make_proxy("file", request, tmp_path, dynamic_config_file=str(dynamic))
    caplog.set_level(logging.DEBUG)
    await proxy.start()
    try:
        await proxy.add_route("/user/alice/", backends["a"].url, {"user": "alice"})
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.public_url + "/user/alice/x")
        assert response.json()["backend"] == "a"
        password = proxy.traefik_api_password
        # checked while it exists: stop() removes the static config it wrote
        assert mode(proxy.static_config_file) == 0o600
    finally:
        await proxy.stop()

    text = dynamic.read_text()
    parsed = tomllib.loads(text) if suffix == "toml" else yaml.safe_load(text)
    assert any("user-alice" in name for name in parsed["http"]["routers"])
    assert mode(dynamic) == 0o600
    # the generated password is random, and only its hash is on disk: SHA-1,
    # cheap for Traefik to check on each API request (traefik accepted it above)
    assert len(password) >= 32
    for path in tmp_path.iterdir():
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path
    expected = "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    assert proxy.traefik_api_hashed_password == expected
    assert proxy.traefik_api_hashed_password in text
    assert password not in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_chosen_password_is_hashed_with_bcrypt_unless_told(request, tmp_path):
    """auto: bcrypt for a password someone set (it may be short); sha1 when asked."""
    proxy = make_proxy("file", request, tmp_path, traefik_api_password="chosen")
    proxy._generate_password_if_needed()
    assert bcrypt.checkpw(b"chosen", proxy.traefik_api_hashed_password.encode())
    proxy = make_proxy(
        "file", request, tmp_path, traefik_api_password="chosen", traefik_api_password_hash="sha1"
    )
    proxy._generate_password_if_needed()
    assert proxy.traefik_api_hashed_password.startswith("{SHA}")
    with pytest.raises(TraitError, match="traefik_api_password_hash"):
        make_proxy("file", request, tmp_path, traefik_api_password_hash="md5")


async def test_password_is_new_at_each_start(request, tmp_path):
    passwords = []
    for i in range(2):
        proxy = make_proxy("file", request, tmp_path / str(i))
        await proxy.start()
        passwords.append(proxy.traefik_api_password)
        await proxy.stop()
    assert passwords[0] != passwords[1]


async def test_new_proxy_object_reads_existing_routes(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    try:
        await proxy.add_route("/user/kept/", backends["a"].url, {"n": 1})
        later = TraefikFileProviderProxy(
            dynamic_config_file=proxy.dynamic_config_file,
            should_start=False,
            traefik_api_url=proxy.traefik_api_url,
            traefik_api_password=proxy.traefik_api_password,
            static_config_file=proxy.static_config_file,
        )
        assert await later.get_route("/user/kept/") == {
            "routespec": "/user/kept/",
            "target": backends["a"].url,
            "data": {"n": 1},
        }
        await later._close()
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    "content, complaint",
    [
        ("[http\nrouters = ", "not valid TOML"),
        ("[jupyterhub]\nroutes = 5\n", "routes"),
        ('[jupyterhub.routes]\nx = "{not json"\n', "route record 'x'"),
    ],
)
async def test_corrupt_file_is_refused_and_left_alone(request, tmp_path, content, complaint):
    dynamic = tmp_path / "rules.toml"
    dynamic.write_text(content)
    proxy = make_proxy("file", request, tmp_path, dynamic_config_file=str(dynamic))
    with pytest.raises(ValueError, match=complaint) as info:
        await proxy.start()
    assert str(dynamic) in str(info.value)
    assert dynamic.read_text() == content
    assert proxy.traefik_process is None
    await proxy.stop()


async def test_https_public_url_serves_our_certificate(request, tmp_path, backends):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    proxy = make_proxy(
        "file",
        request,
        tmp_path,
        public_url=f"https://127.0.0.1:{free_port()}",
        ssl_cert=str(cert_file),
        ssl_key=str(key_file),
    )
    assert proxy.traefik_entrypoint == "https"
    await proxy.start()
    try:
        await proxy.add_route("/user/tls/", backends["a"].url, {})
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as client:
            response = await client.get(proxy.public_url + "/user/tls/x")
        assert response.json()["backend"] == "a"
        # routes are TLS-only: plain http on the same port reaches no backend
        async with httpx.AsyncClient() as client:
            plain = await client.get(proxy.public_url.replace("https", "http") + "/user/tls/x")
        assert plain.status_code == 404
    finally:
        await proxy.stop()


async def test_https_without_certificate_is_a_clear_error(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, public_url=f"https://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="ssl_cert"):
        await proxy.start()


async def test_unknown_extension_is_a_clear_error(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, dynamic_config_file=str(tmp_path / "rules.json"))
    with pytest.raises(ValueError, match=r"rules\.json.*\.toml, \.yaml or \.yml"):
        await proxy.start()


async def test_extra_static_and_dynamic_config(request, tmp_path, backends):
    proxy = make_proxy(
        "file",
        request,
        tmp_path,
        extra_static_config={
            "entryPoints": {"http": {"transport": {"respondingTimeouts": {"idleTimeout": "7s"}}}}
        },
        extra_dynamic_config={
            "http": {
                "middlewares": {"extra-header": {"headers": {"customResponseHeaders": {"X-Extra": "yes"}}}}
            }
        },
    )
    await proxy.start()
    try:
        static = tomllib.loads(open(proxy.static_config_file).read())
        assert static["entryPoints"]["http"]["transport"]["respondingTimeouts"]["idleTimeout"] == "7s"
        assert static["entryPoints"]["http"]["http"]["encodedCharacters"]["allowEncodedSlash"]
        middleware = await proxy.client.get("/api/http/middlewares/extra-header@file")
        assert middleware.status_code == 200
    finally:
        await proxy.stop()


async def test_external_traefik_should_start_false(request, tmp_path, backends):
    """A traefik the test runs itself; the proxy only writes the dynamic config."""
    proxy = make_proxy("file", request, tmp_path, should_start=False, traefik_api_password="correct horse")
    process = start_traefik(proxy)
    try:
        # the first call sets up the API router in the dynamic config and waits for it
        await proxy.add_route("/user/ext/", backends["b"].url, {"ext": True})
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.public_url + "/user/ext/x")
        assert response.json()["backend"] == "b"
        assert (await proxy.get_all_routes())["/user/ext/"]["data"] == {"ext": True}
        await proxy._close()
    finally:
        stop_process(process)


async def test_external_traefik_needs_a_password(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, should_start=False)
    with pytest.raises(ValueError, match="traefik_api_password"):
        await proxy.add_route("/x/", "http://127.0.0.1:1", {})


async def test_stop_leaves_no_traefik_running(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    pid = proxy.traefik_process.pid
    await proxy.stop()
    await asyncio.sleep(0)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_api_over_https(request, tmp_path, backends):
    """An https traefik_api_url serves the API over TLS (Traefik's default
    certificate, so certificate checks are off here)."""
    proxy = make_proxy(
        "file",
        request,
        tmp_path,
        traefik_api_url=f"https://127.0.0.1:{free_port()}",
        traefik_api_validate_cert=False,
    )
    await proxy.start()
    try:
        await proxy.add_route("/user/tls-api/", backends["a"].url, {})
        # plain http to the API port does not reach the API
        async with httpx.AsyncClient(auth=(proxy.traefik_api_username, proxy.traefik_api_password)) as client:
            plain = await client.get(proxy.traefik_api_url.replace("https", "http") + "/api/rawdata")
        assert plain.status_code != 200
    finally:
        await proxy.stop()


async def test_external_traefik_without_dynamic_setup(request, tmp_path, backends):
    """enable_setup_dynamic_config=False: the proxy leaves the API router and
    its auth to whoever runs traefik, and only writes routes."""
    operator = make_proxy("file", request, tmp_path, should_start=False, traefik_api_password="operator's")
    operator._generate_password_if_needed()
    await operator._setup_traefik_dynamic_config()  # the operator's own API router
    api_router = tomllib.loads((tmp_path / "rules.toml").read_text())["http"]["routers"]
    process = start_traefik(operator)
    hub = TraefikFileProviderProxy(
        should_start=False,
        enable_setup_dynamic_config=False,
        dynamic_config_file=operator.dynamic_config_file,
        public_url=operator.public_url,
        traefik_api_url=operator.traefik_api_url,
        traefik_api_password="operator's",
    )
    try:
        await hub.add_route("/user/nosetup/", backends["a"].url, {})
        async with httpx.AsyncClient() as client:
            assert (await client.get(hub.public_url + "/user/nosetup/")).json()["backend"] == "a"
        routers = tomllib.loads((tmp_path / "rules.toml").read_text())["http"]["routers"]
        # the operator's API router is untouched, and the Hub wrote no other
        assert {n: r for n, r in routers.items() if "traefik-api" in n} == api_router
    finally:
        await hub._close()
        stop_process(process)
