"""`traefik-proxy static-config` (python -m traefik_proxy): configs for a traefik you run."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from traefik_proxy.cli import load_proxy, main
from traefik_proxy.traefik_process import find_traefik

from .servers import stop_process
from .utils import free_port

REPO = Path(__file__).resolve().parent.parent


def start_operator_traefik(static_file: Path) -> subprocess.Popen:
    """traefik run as an operator would, its log beside its config."""
    with open(static_file.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            [find_traefik("traefik"), f"--configfile={static_file}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_operator_traefik(traefik: subprocess.Popen, static_file: Path) -> None:
    """Stop it; its log is printed, which pytest shows if the test failed."""
    exited = traefik.poll()
    stop_process(traefik)
    log = static_file.with_suffix(".log").read_text(errors="replace")
    print(f"traefik {static_file.name} (exited early: {exited is not None}):\n{log[-4000:]}")


def test_module_prints_the_static_config_of_the_example(tmp_path):
    env = {**os.environ, "DEMO_RUN_DIR": str(tmp_path), "DEMO_BANNER": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "traefik_proxy",
            "static-config",
            "-f",
            str(REPO / "examples/jupyterhub_config.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    static = tomllib.loads(done.stdout)
    assert static["providers"]["file"]["filename"] == str(tmp_path / "rules.toml")
    assert static["entryPoints"]["http"]["address"] == "127.0.0.1:8000"
    assert static["entryPoints"]["auth_api"]["address"] == "127.0.0.1:8099"
    # the example sets no API password: no dynamic config, and a note saying why
    assert "traefik_api_password" in done.stderr


def test_key_value_config_as_yaml_files(tmp_path, capsys):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.proxy_class = 'traefik_redis'\n"
        "c.JupyterHub.bind_url = 'https://hub.example.org/'\n"
        "c.JupyterHub.ssl_cert = '/etc/hub/cert.pem'\n"
        "c.JupyterHub.ssl_key = '/etc/hub/key.pem'\n"
        "c.TraefikRedisProxy.redis_url = 'redis://127.0.0.1:6399'\n"
        "c.TraefikRedisProxy.traefik_api_password = 'api-secret'\n"
    )
    static_file, dynamic_file = tmp_path / "traefik.yaml", tmp_path / "api.yml"
    assert (
        main(
            [
                "static-config",
                "-f",
                str(config),
                "-o",
                str(static_file),
                "--dynamic-output",
                str(dynamic_file),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == ""
    static = yaml.safe_load(static_file.read_text())
    assert static["providers"]["redis"]["endpoints"] == ["127.0.0.1:6399"]
    assert static["entryPoints"]["https"]["address"] == "hub.example.org:443"
    dynamic = yaml.safe_load(dynamic_file.read_text())
    [users] = [m["basicAuth"]["users"] for m in dynamic["http"]["middlewares"].values()]
    user, _, hashed = users[0].partition(":")
    assert user == "jupyterhub" and bcrypt.checkpw(b"api-secret", hashed.encode())
    assert dynamic["tls"]["stores"]["default"]["defaultCertificate"]["certFile"] == "/etc/hub/cert.pem"
    assert "api-secret" not in static_file.read_text() + dynamic_file.read_text()


def test_not_a_traefik_proxy_class_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text("c.JupyterHub.proxy_class = 'configurable-http-proxy'\n")
    try:
        main(["static-config", "-f", str(config)])
    except SystemExit as e:
        assert "traefik_file" in str(e.code) and "ConfigurableHTTPProxy" in str(e.code)
    else:
        raise AssertionError("no error")


async def test_a_traefik_started_with_the_written_config_serves_the_hub(tmp_path, backends, capsys):
    """The operator's path: write the static config, run traefik with it, and
    let the Hub (should_start = False) add routes."""
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.proxy_class = 'traefik_file'\n"
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.TraefikFileProviderProxy.should_start = False\n"
        f"c.TraefikFileProviderProxy.traefik_api_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.TraefikFileProviderProxy.traefik_api_password = 'operator secret'\n"
        f"c.TraefikFileProviderProxy.dynamic_config_file = '{tmp_path / 'rules.yaml'}'\n"
        "c.TraefikFileProviderProxy.traefik_log_level = 'ERROR'\n"
        f"c.TraefikFileProviderProxy.static_config_file = '{tmp_path / 'traefik.toml'}'\n"
    )
    static_file, dynamic_file = tmp_path / "traefik.toml", tmp_path / "rules.yaml"
    main(["static-config", "-f", str(config), "--output", str(static_file)])
    # traefik's file provider does not start if its file is missing: the command says so
    assert f"must find {dynamic_file} when it starts" in capsys.readouterr().err
    # printed, the dynamic config leaves the default certificate's key out, and says so
    main(["static-config", "-f", str(config), "--format", "yaml"])
    printed = capsys.readouterr()
    assert "PRIVATE KEY" not in printed.out and "default TLS certificate" in printed.err
    main(["static-config", "-f", str(config), "-o", str(static_file), "--dynamic-output", str(dynamic_file)])
    assert "must find" not in capsys.readouterr().err
    # written, it names the default certificate, kept beside it
    kept = (tmp_path / "traefik-default-cert.pem").read_text()
    named = yaml.safe_load(dynamic_file.read_text())["tls"]["stores"]["default"]["defaultCertificate"]
    assert named["certFile"] in kept and named["keyFile"] in kept
    traefik = start_operator_traefik(static_file)
    proxy = load_proxy(str(config))
    try:
        await proxy.add_route("/user/ops/", backends["a"].url, {})
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.public_url + "/user/ops/x")
        assert response.json()["backend"] == "a"
    finally:
        await proxy._close()
        stop_operator_traefik(traefik, static_file)


async def test_shard_traefiks_started_with_the_written_configs_serve_the_hub(tmp_path, backends):
    """should_start = False with traefik_shards: the operator writes the configs
    of the front and of each shard, runs their traefiks, and the Hub's routes
    are served through the front."""
    shard_port = free_port(4)  # the shards' ports: shard_port .. shard_port + 3
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.proxy_class = 'traefik_file'\n"
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.TraefikFileProviderProxy.should_start = False\n"
        "c.TraefikFileProviderProxy.traefik_shards = 2\n"
        f"c.TraefikFileProviderProxy.traefik_shard_port = {shard_port}\n"
        f"c.TraefikFileProviderProxy.traefik_api_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.TraefikFileProviderProxy.traefik_api_password = 'operator secret'\n"
        f"c.TraefikFileProviderProxy.dynamic_config_file = '{tmp_path / 'rules.toml'}'\n"
        "c.TraefikFileProviderProxy.traefik_log_level = 'ERROR'\n"
        f"c.TraefikFileProviderProxy.static_config_file = '{tmp_path / 'traefik.toml'}'\n"
    )
    traefiks = []
    try:
        for shard, name in [([], ""), (["--shard", "0"], ".shard-0"), (["--shard", "1"], ".shard-1")]:
            static_file = tmp_path / f"traefik{name}.toml"
            main(
                [
                    "static-config",
                    "-f",
                    str(config),
                    "-o",
                    str(static_file),
                    "--dynamic-output",
                    str(tmp_path / f"rules{name}.toml"),
                    *shard,
                ]
            )
            traefiks.append((start_operator_traefik(static_file), static_file))
        shard_static = tomllib.loads((tmp_path / "traefik.shard-1.toml").read_text())
        assert shard_static["entryPoints"]["http"]["address"] == f"127.0.0.1:{shard_port + 2}"
        proxy = load_proxy(str(config))
        try:
            await proxy.add_route("/", backends["hub"].url, {"hub": True})
            for user in ("ops", "zoe", "amy"):
                await proxy.add_route(f"/user/{user}/", backends["a"].url, {})
            async with httpx.AsyncClient() as client:
                for path, backend in [("/user/ops/x", "a"), ("/user/zoe/", "a"), ("/hub/", "hub")]:
                    response = await client.get(proxy.public_url + path)
                    assert response.json()["backend"] == backend, path
            assert set(await proxy.get_all_routes()) == {"/", "/user/ops/", "/user/zoe/", "/user/amy/"}
        finally:
            await proxy.stop()
    finally:
        for traefik, static_file in traefiks:
            stop_operator_traefik(traefik, static_file)


def test_a_shard_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.proxy_class = 'traefik_file'\n"
        "c.TraefikFileProviderProxy.traefik_shards = 2\n"
        "c.TraefikFileProviderProxy.traefik_shard_port = 40000\n"
    )
    with pytest.raises(SystemExit, match="--shard 2: traefik_shards is 2"):
        main(["static-config", "-f", str(config), "--shard", "2"])


def test_the_version_is_one_number_everywhere(capsys):
    """The package's metadata, ``traefik_proxy.__version__`` and the command agree."""
    import importlib.metadata

    import traefik_proxy

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out.split()
    assert printed == ["traefik-proxy", traefik_proxy.__version__]
    assert importlib.metadata.version("traefik-proxy") == traefik_proxy.__version__
    assert f"## [{traefik_proxy.__version__}]" in (REPO / "CHANGELOG.md").read_text()
