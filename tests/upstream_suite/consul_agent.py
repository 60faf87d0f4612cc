"""``consul agent -dev`` for the upstream suite, served by tests/consul_standin.py.

There is no Consul binary here. jupyterhub-traefik-proxy's conftest starts
``consul agent -dev -http-port=N`` (and, for its ACL tests, the same with
``-config-file=tests/config_files/consul_config.json`` and port flags for
Consul's other listeners). bin/consul runs this script with those arguments;
it serves our in-memory stand-in of Consul's KV HTTP API on 127.0.0.1:N (and
[::1]:N, so ``localhost`` works too) until SIGTERM/SIGINT, then exits 0.

What it reads from the arguments: ``-http-port`` (default 8500) and the ACL
tokens of ``-config-file`` (JSON only): ``acl.tokens.initial_management`` (or
the older ``acl.tokens.master``) is the one token the stand-in accepts, and
``acl.tokens.default`` is what real Consul uses for a request that sends no
token. Every other flag (-dev, -bootstrap-expect, -dns-port, -server-port,
-grpc-port, -serf-*-port, ...) is accepted and ignored: the stand-in opens no
other listener.

tests/consul_standin.py is loaded by path, not as ``tests.consul_standin``:
in the upstream run ``tests`` is the upstream suite's package.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import sys
import threading
from pathlib import Path

STANDIN = Path(__file__).resolve().parent.parent / "consul_standin.py"


def _load_standin():
    spec = importlib.util.spec_from_file_location("_upstream_suite_consul_standin", STANDIN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str]) -> tuple[int, str, str]:
    """(http port, management token, default token) from consul's arguments."""
    if not argv or argv[0] != "agent":
        raise SystemExit(
            f"consul (upstream-suite stand-in): only `consul agent -dev ...` is supported, got {argv!r}"
        )
    port, config_files = 8500, []
    args = iter(argv[1:])
    for arg in args:
        name, eq, value = arg.lstrip("-").partition("=")
        if name in ("http-port", "config-file") and not eq:
            value = next(args)
        if name == "http-port":
            port = int(value)
        elif name == "config-file":
            config_files.append(value)
    token = default = ""
    for path in config_files:
        tokens = json.loads(Path(path).read_text()).get("acl", {}).get("tokens", {})
        token = tokens.get("initial_management") or tokens.get("master") or token
        default = tokens.get("default", default)
    return port, token, default


def main(argv: list[str]) -> int:
    port, token, default_token = parse_args(argv)
    standin_module = _load_standin()

    standin = standin_module.ConsulStandin(port, token=token, default_token=default_token).start()

    async def listen_ipv6():
        from aiohttp import web

        await web.TCPSite(standin._runner, "::1", port).start()

    try:
        asyncio.run_coroutine_threadsafe(listen_ipv6(), standin._loop).result(10)
    except OSError:
        pass  # no IPv6 loopback: 127.0.0.1 only
    print(
        f"consul stand-in (tests/consul_standin.py) on http://127.0.0.1:{port}"
        + (" with an ACL token" if token else "")
        + (", default token set" if token and default_token == token else ""),
        flush=True,
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
