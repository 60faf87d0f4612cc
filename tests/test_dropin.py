"""Switching over from jupyterhub-traefik-proxy or configurable-http-proxy (issue 11).

Through real traefik: routers of others on the public entrypoint are named at
start; jupyterhub-traefik-proxy's old setting and class names keep working;
stop() leaves no file it created behind and a failed start() no traefik;
Traefik's dashboard behind the API's auth. (Taking over the old project's
dynamic config file is in tests/test_legacy_layouts.py.)
"""

from __future__ import annotations

import logging
import os
import tomllib
import warnings
from pathlib import Path

import httpx
import pytest
from traitlets.config import Config

from traefik_proxy.fileprovider import TraefikFileProviderProxy, TraefikTomlProxy
from traefik_proxy.traefik_api import hash_password

from .proxies import make_proxy
from .servers import free_port, start_traefik, stop_process

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- foreign routers

#: a router another tool put on the public entrypoint, and one on another entrypoint
FOREIGN = {
    "http": {
        "routers": {
            "other-app": {"rule": "PathPrefix(`/other`)", "service": "other-app", "entryPoints": ["http"]},
            "api-side": {"rule": "PathPrefix(`/x`)", "service": "other-app", "entryPoints": ["auth_api"]},
        },
        "services": {"other-app": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
    }
}


def foreign_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not written by this Hub" in r.getMessage()]


async def test_foreign_router_on_the_public_entrypoint_is_named_at_start(request, tmp_path, caplog):
    proxy = make_proxy("file", request, tmp_path, extra_dynamic_config=FOREIGN)
    caplog.set_level(logging.WARNING, logger=proxy.log.name)
    await proxy.start()
    try:
        [warning] = foreign_warnings(caplog)
        assert "other-app@file" in warning and "entrypoint 'http'" in warning
        assert "api-side" not in warning and proxy.traefik_namespace + "-" not in warning
    finally:
        await proxy.stop()


async def test_no_warning_without_foreign_routers(request, tmp_path, caplog, backends):
    proxy = make_proxy("file", request, tmp_path)
    caplog.set_level(logging.WARNING, logger=proxy.log.name)
    await proxy.start()
    try:
        for user in ("a", "b", "c", "d"):
            await proxy.add_route(f"/user/{user}/", backends["a"].url, {})
        assert not foreign_warnings(caplog)
        # the listing follows Traefik's pages (9 routers: the API's, 4 routes
        # and the 4 one-character buckets of the route tree; 2 per page here)
        names = sorted(r["name"] for r in await proxy._api.list_routers(per_page=2))
        assert len(names) == 9 and names == sorted(r["name"] for r in await proxy._api.list_routers())
    finally:
        await proxy.stop()


async def test_foreign_router_is_named_on_first_use_of_an_external_traefik(
    request, tmp_path, caplog, backends
):
    proxy = make_proxy(
        "file",
        request,
        tmp_path,
        should_start=False,
        traefik_api_password="external",
        extra_dynamic_config=FOREIGN,
    )
    caplog.set_level(logging.WARNING, logger=proxy.log.name)
    process = start_traefik(proxy)
    try:
        await proxy.add_route("/user/ext/", backends["a"].url, {})
        await proxy.add_route("/user/ext2/", backends["a"].url, {})
        [warning] = foreign_warnings(caplog)
        assert "other-app@file" in warning
    finally:
        await proxy._close()
        stop_process(process)


# ---------------------------------------------------------------- old names


def test_old_static_config_name_sets_the_new_one_with_a_warning():
    config = Config()
    config.TraefikFileProviderProxy.toml_static_config_file = "/srv/old-traefik.toml"
    with pytest.warns(DeprecationWarning, match=r"set TraefikFileProviderProxy\.static_config_file"):
        proxy = TraefikFileProviderProxy(config=config)
    assert proxy.static_config_file == "/srv/old-traefik.toml"


def test_old_class_name_and_dynamic_config_name():
    config = Config()
    config.TraefikTomlProxy.toml_dynamic_config_file = "/srv/old-rules.toml"
    with pytest.warns(DeprecationWarning) as caught:
        proxy = TraefikTomlProxy(config=config)
    messages = [str(w.message) for w in caught]
    assert any("set TraefikTomlProxy.dynamic_config_file" in m for m in messages), messages
    assert any("use TraefikFileProviderProxy ('traefik_file')" in m for m in messages), messages
    assert isinstance(proxy, TraefikFileProviderProxy)
    assert proxy.dynamic_config_file == "/srv/old-rules.toml"


def test_traefik_toml_entry_point_names_the_old_class():
    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    module, _, name = entry_points["jupyterhub.proxies"]["traefik_toml"].partition(":")
    assert (module, name) == ("traefik_proxy.fileprovider", "TraefikTomlProxy")


async def test_a_config_with_only_old_names_runs(request, tmp_path, backends):
    """An old config (class and file settings by their old names) starts traefik
    with the files it names and routes through it."""
    config = Config()
    config.TraefikTomlProxy.toml_static_config_file = str(tmp_path / "old-static.toml")
    config.TraefikTomlProxy.toml_dynamic_config_file = str(tmp_path / "old-rules.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        proxy = TraefikTomlProxy(
            config=config,
            public_url=f"http://127.0.0.1:{free_port()}",
            traefik_api_url=f"http://127.0.0.1:{free_port()}",
            traefik_pid_file=str(tmp_path / "traefik.pid"),
            traefik_log_level="ERROR",
        )
    await proxy.start()
    try:
        assert (tmp_path / "old-static.toml").exists()
        await proxy.add_route("/user/old/", backends["a"].url, {})
        async with httpx.AsyncClient() as client:
            assert (await client.get(proxy.public_url + "/user/old/x")).json()["backend"] == "a"
        assert "user-old" in (tmp_path / "old-rules.toml").read_text()
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    "trait, value, complaint",
    [
        ("public_url", "ftp://127.0.0.1:23/", "not an http or https URL"),
        ("public_url", "127.0.0.1:8000", "not an http or https URL"),
        ("public_url", "http+unix://%2Fsrv%2Fhub.sock", "not an http or https URL"),
        ("public_url", "http://127.0.0.1:port/", "invalid port"),
        ("traefik_api_url", "http://:8099", "no host"),
        ("traefik_api_url", "localhost:8099", "not an http or https URL"),
    ],
)
def test_urls_that_cannot_work_are_refused(trait, value, complaint):
    with pytest.raises(ValueError, match=complaint) as info:
        TraefikFileProviderProxy(**{trait: value})
    assert repr(value) in str(info.value) and f"set {trait} to http://host:port/" in str(info.value)


@pytest.mark.parametrize(
    "trait, value, normalised",
    [
        ("public_url", "http://127.0.0.1/", "http://127.0.0.1:80/"),
        ("public_url", "https://hub.example.org", "https://hub.example.org:443"),
        ("public_url", "http://:8000", "http://:8000"),  # JupyterHub's default bind_url
        ("public_url", "http://[::1]/base/", "http://[::1]:80/base/"),
        ("traefik_api_url", "http://127.0.0.1", "http://127.0.0.1:80"),
        ("traefik_api_url", "http://localhost:8099", "http://localhost:8099"),
    ],
)
def test_urls_get_an_explicit_port_as_the_old_project_gives_them(trait, value, normalised):
    assert getattr(TraefikFileProviderProxy(**{trait: value}), trait) == normalised


# ---------------------------------------------------------------- stop and failed start


def traefik_pids_using(static_config_file: str) -> list[int]:
    """Processes whose command line names this static config file."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if os.path.abspath(static_config_file).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


async def test_stop_removes_the_files_it_created_and_keeps_the_routes(request, tmp_path, backends):
    proxy = make_proxy("file", request, tmp_path)
    await proxy.start()
    await proxy.add_route("/user/kept/", backends["a"].url, {"kept": True})
    assert Path(proxy.static_config_file).exists() and Path(proxy.traefik_pid_file).exists()
    await proxy.stop()
    assert not Path(proxy.static_config_file).exists()
    assert not Path(proxy.traefik_pid_file).exists()
    # the dynamic config file is the store of the routes: the next Hub needs it
    later = make_proxy("file", request, tmp_path)
    await later.start()
    try:
        assert (await later.get_route("/user/kept/"))["data"] == {"kept": True}
    finally:
        await later.stop()


async def test_a_start_whose_api_never_answers_leaves_no_traefik(request, tmp_path):
    # the hash Traefik is given is not the password's: the API answers 401 only
    proxy = make_proxy(
        "file",
        request,
        tmp_path,
        traefik_api_password="the password",
        traefik_api_hashed_password=hash_password("not the password", 4),
        check_route_timeout=3,
    )
    with pytest.raises(TimeoutError, match="did not answer"):
        await proxy.start()
    assert proxy.traefik_process is None
    assert traefik_pids_using(proxy.static_config_file) == []
    assert not Path(proxy.static_config_file).exists()
    assert not Path(proxy.traefik_pid_file).exists()


async def test_a_hash_without_its_password_is_refused_before_launch(request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, traefik_api_hashed_password=hash_password("x", 4))
    with pytest.raises(ValueError, match="set c.TraefikProxy.traefik_api_password"):
        await proxy.start()
    assert proxy.traefik_process is None


async def test_a_start_failing_after_traefik_serves_leaves_no_traefik(request, tmp_path, monkeypatch):
    proxy = make_proxy("file", request, tmp_path)
    launched = []

    async def failing_check():
        launched.append(proxy.traefik_process.pid)
        raise RuntimeError("injected failure after launch")

    monkeypatch.setattr(proxy, "_warn_about_foreign_routers", failing_check)
    with pytest.raises(RuntimeError, match="injected"):
        await proxy.start()
    assert launched and traefik_pids_using(proxy.static_config_file) == []
    with pytest.raises(ProcessLookupError):
        os.kill(launched[0], 0)


# ---------------------------------------------------------------- dashboard


@pytest.mark.parametrize("dashboard", [True, False])
async def test_dashboard_behind_the_api_auth(dashboard, request, tmp_path):
    proxy = make_proxy("file", request, tmp_path, traefik_dashboard=dashboard)
    await proxy.start()
    try:
        url = proxy.traefik_api_url.replace("localhost", "127.0.0.1") + "/dashboard/"
        auth = (proxy.traefik_api_username, proxy.traefik_api_password)
        async with httpx.AsyncClient() as client:
            with_auth = await client.get(url, auth=auth)
            without = await client.get(url)
        if dashboard:
            assert with_auth.status_code == 200 and "<html" in with_auth.text.lower()
            assert without.status_code == 401
        else:
            assert with_auth.status_code == 404
        # the API itself is unchanged
        assert (await proxy.client.get("/api/overview")).status_code == 200
    finally:
        await proxy.stop()
