"""Start the demo Hub (examples/jupyterhub_config.py) and say where to log in.

    python examples/run_demo.py            # what `make run` does

It runs ``python -m jupyterhub -f examples/jupyterhub_config.py`` with the
same interpreter, waits until the Hub answers through Traefik, prints the URL
and the demo login, and stops when JupyterHub stops: Ctrl-C or SIGTERM is
passed on to the Hub, which stops traefik and the users' servers on its way out. The environment
variables that configure the demo are listed in jupyterhub_config.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jupyterhub_config.py"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def hub_answers(url: str) -> bool:
    # no proxies: the demo is on this machine
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    env = dict(os.environ)
    run_dir = Path(env.get("DEMO_RUN_DIR") or HERE.parent / "run").resolve()
    public_url = (env.get("DEMO_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
    password = env.get("DEMO_PASSWORD") or "demo-password"
    env.update(DEMO_RUN_DIR=str(run_dir), DEMO_PUBLIC_URL=public_url, DEMO_BANNER="0")

    public = urlsplit(public_url)
    ports = {
        "DEMO_PUBLIC_URL": (public.hostname or "127.0.0.1", public.port or 80),
        "DEMO_HUB_PORT": ("127.0.0.1", int(env.get("DEMO_HUB_PORT") or 8081)),
        "DEMO_TRAEFIK_API_PORT": ("127.0.0.1", int(env.get("DEMO_TRAEFIK_API_PORT") or 8099)),
    }
    for var, (host, port) in ports.items():
        probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
        if port_in_use(probe, port):
            print(
                f"port {port} is already in use (a traefik or jupyterhub left from an "
                f"earlier run?); stop what listens there or set {var}",
                file=sys.stderr,
            )
            return 2

    run_dir.mkdir(parents=True, exist_ok=True)
    # The Hub gets its own session so that a Ctrl-C reaches it once, from us,
    # and we wait for its cleanup (traefik, users' servers) instead of dying first.
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)],
        cwd=run_dir,
        env=env,
        start_new_session=True,
    )
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: hub.send_signal(signum))

    deadline = time.monotonic() + 120
    while hub.poll() is None and time.monotonic() < deadline:
        if hub_answers(f"{public_url}/hub/health"):
            print(
                f"\n  traefik-proxy demo is running (state in {run_dir})\n"
                f"  open   {public_url}/hub/login\n"
                f"  login  any username, password: {password}\n"
                f"  stop   Ctrl-C\n",
                flush=True,
            )
            break
        time.sleep(0.5)
    else:
        if hub.poll() is None:
            print("JupyterHub did not answer within 120 s; see its log above", file=sys.stderr)
    return hub.wait()


if __name__ == "__main__":
    sys.exit(main())
