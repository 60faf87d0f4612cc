"""Demo: JupyterHub behind Traefik, routes kept in a TOML file.

Run it with ``make run``, ``python examples/run_demo.py`` or
``jupyterhub -f examples/jupyterhub_config.py``. Everything it writes (database,
cookie secret, traefik.toml, rules.toml, users' home directories) goes to one
directory, ``run/`` at the top of the repository unless ``DEMO_RUN_DIR`` says
otherwise.

Environment variables (all optional):

- ``DEMO_PUBLIC_URL``       where users connect (default http://127.0.0.1:8000)
- ``DEMO_HUB_PORT``         the Hub's own port on 127.0.0.1 (default 8081)
- ``DEMO_TRAEFIK_API_PORT`` Traefik's API entrypoint on 127.0.0.1 (default 8099)
- ``DEMO_RUN_DIR``          the state directory (default <repo>/run)
- ``DEMO_PASSWORD``         the shared login password (default demo-password)
- ``DEMO_BANNER``           "0" to not print the URL and login at startup

This is a demo: any username can log in with the shared password, and every
user's server runs as the user running the Hub. Do not expose it.
"""

import importlib.util
import os
import sys
from pathlib import Path

import jupyterhub

c = get_config()  # noqa: F821  (provided by JupyterHub's config loader)

REPO = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("DEMO_RUN_DIR") or REPO / "run").resolve()
PUBLIC_URL = os.environ.get("DEMO_PUBLIC_URL") or "http://127.0.0.1:8000"
HUB_PORT = int(os.environ.get("DEMO_HUB_PORT") or 8081)
TRAEFIK_API_PORT = int(os.environ.get("DEMO_TRAEFIK_API_PORT") or 8099)
PASSWORD = os.environ.get("DEMO_PASSWORD") or "demo-password"

RUN_DIR.mkdir(parents=True, exist_ok=True)
(RUN_DIR / "home").mkdir(exist_ok=True)

# --- the proxy: traefik, started by the Hub, watching run/rules.toml
c.JupyterHub.proxy_class = "traefik_file"
c.JupyterHub.bind_url = PUBLIC_URL
c.TraefikFileProviderProxy.static_config_file = str(RUN_DIR / "traefik.toml")
c.TraefikFileProviderProxy.dynamic_config_file = str(RUN_DIR / "rules.toml")
c.TraefikFileProviderProxy.traefik_api_url = f"http://127.0.0.1:{TRAEFIK_API_PORT}"
c.TraefikFileProviderProxy.traefik_pid_file = str(RUN_DIR / "traefik.pid")
# what neither configurable-http-proxy nor jupyterhub-traefik-proxy does:
# the Hub's error page when a user's server is down, and per-route activity
# (JupyterHub reads it every last_activity_interval; shortened for the demo)
c.TraefikFileProviderProxy.traefik_error_pages = True
c.TraefikFileProviderProxy.traefik_track_activity = True
c.JupyterHub.last_activity_interval = 60

# --- the Hub itself, reachable only from this machine
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_PORT
c.JupyterHub.db_url = f"sqlite:///{RUN_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(RUN_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(RUN_DIR / "jupyterhub.pid")

# --- login: any username, one shared password.
# JupyterHub 5.3 deprecated DummyAuthenticator.password in favour of
# SharedPasswordAuthenticator (which wants 8+ characters); older Hubs only
# have the former.
if importlib.util.find_spec("jupyterhub.authenticators.shared") is not None:
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = PASSWORD
else:
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = PASSWORD
c.Authenticator.allow_all = True

# --- single-user servers: local processes, no system users needed
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(RUN_DIR / "home" / "{username}")
# the interpreter running the Hub has jupyterhub-singleuser, whatever PATH says
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"] if os.getuid() == 0 else []
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if importlib.util.find_spec("jupyterlab") is not None:
    c.Spawner.default_url = "/lab"
elif importlib.util.find_spec("notebook") is not None:
    c.Spawner.default_url = "/tree"
# else: jupyter_server's own landing page at /user/<name>/

if os.environ.get("DEMO_BANNER", "1") != "0":
    print(
        f"\n  traefik-proxy demo (JupyterHub {jupyterhub.__version__}), state in {RUN_DIR}\n"
        f"  open   {PUBLIC_URL.rstrip('/')}/hub/login\n"
        f"  login  any username, password: {PASSWORD}\n",
        file=sys.stderr,
        flush=True,
    )
