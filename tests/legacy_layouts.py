"""The layouts jupyterhub-traefik-proxy 2.1.0 writes, and writers that put them
into real stores and files, for the tests of taking over from it.

These are the exact layouts jupyterhub-traefik-proxy 2.1.0 (PyPI wheel, equal to
its git tag 2.1.0) writes for its default settings (prefixes ``traefik`` and
``jupyterhub``, entrypoints ``http`` and ``auth_api``, API user ``jupyterhub``,
``traefik_api_url = http://localhost:8099``), produced by running its own code
for the routes in :data:`LEGACY_ROUTES` and recorded here as literals:

- key-value stores (etcd, Redis, Consul share it): ``kv_proxy.py``
  (``flatten_dict_for_kv``) on the config of ``proxy.py``
  (``_setup_traefik_dynamic_config``, ``_dynamic_config_for_route``) with the
  names and rules of ``traefik_utils.py`` (``generate_alias``, ``generate_rule``);
- the dynamic config file: ``fileprovider.py``, dumped by the ``toml`` package
  (``rules.toml``) or ``ruamel.yaml`` (``rules.yaml``).

docs/legacy-layout.md describes the layout. The writers write what the old
project writes the way it writes it: one write for its setup and one per
route (as ``add_route`` did), as plain string keys (Redis: ``MSET``, no index;
etcd: one transaction of puts; Consul: one ``/v1/txn`` of ``set`` verbs).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

#: The old API login; its bcrypt hash (4 rounds, to keep tests fast) is in the layouts.
LEGACY_API_USER = "jupyterhub"
LEGACY_API_PASSWORD = "old-api-secret"

#: (routespec, target, data) as JupyterHub passed them to the old add_route.
LEGACY_ROUTES = [
    ("/", "http://127.0.0.1:8081", {"hub": True}),
    ("/user/alice/", "http://127.0.0.1:9001", {"user": "alice", "server_name": ""}),
    (
        "hub.example.org/user/bob/",
        "http://10.0.0.2:9002",
        {"user": "bob", "n": 3, "l": ["a", "b"], "d": {"x": "y"}},
    ),
    ("/user/%C3%A9lise_x.y/", "http://127.0.0.1:9003", {}),
]

# ---------------------------------------------------------------- key-value stores

# fmt: off
LEGACY_KV_SETUP = {
    'traefik/http/middlewares/auth_api/basicAuth/users/0': 'jupyterhub:$2b$04$PVyFk9o0c3KQafpYz5Kn3u.Eddld8MjcvQ1aEdrufaEuu2E.wc93u',
    'traefik/http/routers/route_api/entryPoints/0': 'auth_api',
    'traefik/http/routers/route_api/middlewares/0': 'auth_api',
    'traefik/http/routers/route_api/rule': 'Host(`localhost`) && PathPrefix(`/api`)',
    'traefik/http/routers/route_api/service': 'api@internal',
}
LEGACY_KV_ROUTES = {
    '/': {
        'jupyterhub/routes/router__2F/data/hub': 'true',
        'jupyterhub/routes/router__2F/router': 'router__2F',
        'jupyterhub/routes/router__2F/routespec': '/',
        'jupyterhub/routes/router__2F/service': 'service__2F',
        'jupyterhub/routes/router__2F/target': 'http://127.0.0.1:8081',
        'traefik/http/routers/router__2F/entryPoints/0': 'http',
        'traefik/http/routers/router__2F/rule': 'PathPrefix(`/`)',
        'traefik/http/routers/router__2F/service': 'service__2F',
        'traefik/http/services/service__2F/loadBalancer/passHostHeader': 'true',
        'traefik/http/services/service__2F/loadBalancer/servers/0/url': 'http://127.0.0.1:8081',
    },
    '/user/%C3%A9lise_x.y/': {
        'jupyterhub/routes/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/router': 'router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F',
        'jupyterhub/routes/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/routespec': '/user/%C3%A9lise_x.y/',
        'jupyterhub/routes/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/service': 'service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F',
        'jupyterhub/routes/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/target': 'http://127.0.0.1:9003',
        'traefik/http/routers/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/entryPoints/0': 'http',
        'traefik/http/routers/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/rule': '( PathPrefix(`/user/élise_x.y/`) || Path(`/user/élise_x.y`) )',
        'traefik/http/routers/router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/service': 'service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F',
        'traefik/http/services/service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/loadBalancer/passHostHeader': 'true',
        'traefik/http/services/service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F/loadBalancer/servers/0/url': 'http://127.0.0.1:9003',
    },
    '/user/alice/': {
        'jupyterhub/routes/router__2Fuser_2Falice_2F/data/server_name': '',
        'jupyterhub/routes/router__2Fuser_2Falice_2F/data/user': 'alice',
        'jupyterhub/routes/router__2Fuser_2Falice_2F/router': 'router__2Fuser_2Falice_2F',
        'jupyterhub/routes/router__2Fuser_2Falice_2F/routespec': '/user/alice/',
        'jupyterhub/routes/router__2Fuser_2Falice_2F/service': 'service__2Fuser_2Falice_2F',
        'jupyterhub/routes/router__2Fuser_2Falice_2F/target': 'http://127.0.0.1:9001',
        'traefik/http/routers/router__2Fuser_2Falice_2F/entryPoints/0': 'http',
        'traefik/http/routers/router__2Fuser_2Falice_2F/rule': '( PathPrefix(`/user/alice/`) || Path(`/user/alice`) )',
        'traefik/http/routers/router__2Fuser_2Falice_2F/service': 'service__2Fuser_2Falice_2F',
        'traefik/http/services/service__2Fuser_2Falice_2F/loadBalancer/passHostHeader': 'true',
        'traefik/http/services/service__2Fuser_2Falice_2F/loadBalancer/servers/0/url': 'http://127.0.0.1:9001',
    },
    'hub.example.org/user/bob/': {
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/data/d/x': 'y',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/data/l/0': 'a',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/data/l/1': 'b',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/data/n': '3',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/data/user': 'bob',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/router': 'router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/routespec': 'hub.example.org/user/bob/',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/service': 'service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F',
        'jupyterhub/routes/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/target': 'http://10.0.0.2:9002',
        'traefik/http/routers/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/entryPoints/0': 'http',
        'traefik/http/routers/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/rule': 'Host(`hub.example.org`) && ( PathPrefix(`/user/bob/`) || Path(`/user/bob`) )',
        'traefik/http/routers/router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/service': 'service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F',
        'traefik/http/services/service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/loadBalancer/passHostHeader': 'true',
        'traefik/http/services/service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F/loadBalancer/servers/0/url': 'http://10.0.0.2:9002',
    },
}
# fmt: on

#: Every key the old project leaves in a key-value store for LEGACY_ROUTES.
LEGACY_KV = {k: v for write in [LEGACY_KV_SETUP, *LEGACY_KV_ROUTES.values()] for k, v in write.items()}

# ---------------------------------------------------------------- files

#: rules.toml as the old file provider leaves it (the ``toml`` package's output).
LEGACY_TOML = """\
[http.routers.route_api]
rule = "Host(`localhost`) && PathPrefix(`/api`)"
entryPoints = [ "auth_api",]
service = "api@internal"
middlewares = [ "auth_api",]

[http.routers.router__2F]
service = "service__2F"
rule = "PathPrefix(`/`)"
entryPoints = [ "http",]

[http.routers.router__2Fuser_2Falice_2F]
service = "service__2Fuser_2Falice_2F"
rule = "( PathPrefix(`/user/alice/`) || Path(`/user/alice`) )"
entryPoints = [ "http",]

[http.routers.router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F]
service = "service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F"
rule = "Host(`hub.example.org`) && ( PathPrefix(`/user/bob/`) || Path(`/user/bob`) )"
entryPoints = [ "http",]

[http.routers.router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F]
service = "service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F"
rule = "( PathPrefix(`/user/élise_x.y/`) || Path(`/user/élise_x.y`) )"
entryPoints = [ "http",]

[jupyterhub.routes.router__2F]
routespec = "/"
target = "http://127.0.0.1:8081"
router = "router__2F"
service = "service__2F"

[jupyterhub.routes.router__2Fuser_2Falice_2F]
routespec = "/user/alice/"
target = "http://127.0.0.1:9001"
router = "router__2Fuser_2Falice_2F"
service = "service__2Fuser_2Falice_2F"

[jupyterhub.routes.router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F]
routespec = "hub.example.org/user/bob/"
target = "http://10.0.0.2:9002"
router = "router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F"
service = "service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F"

[jupyterhub.routes.router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F]
routespec = "/user/%C3%A9lise_x.y/"
target = "http://127.0.0.1:9003"
router = "router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F"
service = "service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F"

[http.middlewares.auth_api.basicAuth]
users = [ "jupyterhub:$2b$04$PVyFk9o0c3KQafpYz5Kn3u.Eddld8MjcvQ1aEdrufaEuu2E.wc93u",]

[http.services.service__2F.loadBalancer]
passHostHeader = true
[[http.services.service__2F.loadBalancer.servers]]
url = "http://127.0.0.1:8081"

[http.services.service__2Fuser_2Falice_2F.loadBalancer]
passHostHeader = true
[[http.services.service__2Fuser_2Falice_2F.loadBalancer.servers]]
url = "http://127.0.0.1:9001"

[http.services.service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F.loadBalancer]
passHostHeader = true
[[http.services.service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F.loadBalancer.servers]]
url = "http://10.0.0.2:9002"

[http.services.service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F.loadBalancer]
passHostHeader = true
[[http.services.service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F.loadBalancer.servers]]
url = "http://127.0.0.1:9003"

[jupyterhub.routes.router__2F.data]
hub = true

[jupyterhub.routes.router__2Fuser_2Falice_2F.data]
user = "alice"
server_name = ""

[jupyterhub.routes.router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F.data]
user = "bob"
n = 3
l = [ "a", "b",]

[jupyterhub.routes.router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F.data]

[jupyterhub.routes.router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F.data.d]
x = "y"
"""

#: rules.yaml as the old file provider leaves it (``ruamel.yaml``'s output;
#: the long rule is folded over two lines, the first ending in a space).
LEGACY_YAML = """\
http:
  routers:
    route_api:
      rule: Host(`localhost`) && PathPrefix(`/api`)
      entryPoints:
      - auth_api
      service: api@internal
      middlewares:
      - auth_api
    router__2F:
      service: service__2F
      rule: PathPrefix(`/`)
      entryPoints:
      - http
    router__2Fuser_2Falice_2F:
      service: service__2Fuser_2Falice_2F
      rule: ( PathPrefix(`/user/alice/`) || Path(`/user/alice`) )
      entryPoints:
      - http
    router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F:
      service: service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F
      rule: Host(`hub.example.org`) && ( PathPrefix(`/user/bob/`) ||\x20
        Path(`/user/bob`) )
      entryPoints:
      - http
    router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F:
      service: service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F
      rule: ( PathPrefix(`/user/élise_x.y/`) || Path(`/user/élise_x.y`) )
      entryPoints:
      - http
  middlewares:
    auth_api:
      basicAuth:
        users:
        - jupyterhub:$2b$04$PVyFk9o0c3KQafpYz5Kn3u.Eddld8MjcvQ1aEdrufaEuu2E.wc93u
  services:
    service__2F:
      loadBalancer:
        servers:
        - url: http://127.0.0.1:8081
        passHostHeader: true
    service__2Fuser_2Falice_2F:
      loadBalancer:
        servers:
        - url: http://127.0.0.1:9001
        passHostHeader: true
    service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F:
      loadBalancer:
        servers:
        - url: http://10.0.0.2:9002
        passHostHeader: true
    service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F:
      loadBalancer:
        servers:
        - url: http://127.0.0.1:9003
        passHostHeader: true
jupyterhub:
  routes:
    router__2F:
      data:
        hub: true
      routespec: /
      target: http://127.0.0.1:8081
      router: router__2F
      service: service__2F
    router__2Fuser_2Falice_2F:
      data:
        user: alice
        server_name: ''
      routespec: /user/alice/
      target: http://127.0.0.1:9001
      router: router__2Fuser_2Falice_2F
      service: service__2Fuser_2Falice_2F
    router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F:
      data:
        user: bob
        n: 3
        l:
        - a
        - b
        d:
          x: y
      routespec: hub.example.org/user/bob/
      target: http://10.0.0.2:9002
      router: router_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F
      service: service_hub_2Eexample_2Eorg_2Fuser_2Fbob_2F
    router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F:
      data: {}
      routespec: /user/%C3%A9lise_x.y/
      target: http://127.0.0.1:9003
      router: router__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F
      service: service__2Fuser_2F_25C3_25A9lise_5Fx_2Ey_2F
"""


# ---------------------------------------------------------------- variations


def _retarget(text_or_value: str, targets: Mapping[str, str]) -> str:
    old_targets = {routespec: target for routespec, target, _ in LEGACY_ROUTES}
    for routespec, new in targets.items():
        text_or_value = text_or_value.replace(old_targets[routespec], new)
    return text_or_value


def _reprefix(key: str, traefik_prefix: str, jupyterhub_prefix: str) -> str:
    first, _, rest = key.partition("/")
    return f"{traefik_prefix if first == 'traefik' else jupyterhub_prefix}/{rest}"


def legacy_kv_writes(
    targets: Mapping[str, str] | None = None,
    traefik_prefix: str = "traefik",
    jupyterhub_prefix: str = "jupyterhub",
) -> list[dict[str, str]]:
    """The old project's writes, in order: its setup, then one per route.

    ``targets`` (routespec → URL) points routes of :data:`LEGACY_ROUTES` at
    servers a test runs; other routes keep their literal targets.
    """
    targets = dict(targets or {})
    unknown = set(targets) - {routespec for routespec, _, _ in LEGACY_ROUTES}
    if unknown:
        raise KeyError(f"not in LEGACY_ROUTES: {sorted(unknown)}")
    return [
        {
            _reprefix(key, traefik_prefix, jupyterhub_prefix): _retarget(value, targets)
            for key, value in write.items()
        }
        for write in [LEGACY_KV_SETUP, *LEGACY_KV_ROUTES.values()]
    ]


def legacy_file_text(suffix: str, targets: Mapping[str, str] | None = None) -> str:
    """rules.toml (``suffix=".toml"``) or rules.yaml (``".yaml"``/``".yml"``) text."""
    text = LEGACY_TOML if suffix == ".toml" else LEGACY_YAML
    return _retarget(text, dict(targets or {}))


# ---------------------------------------------------------------- writers


def write_legacy_file(path: Path, targets: Mapping[str, str] | None = None) -> None:
    """The old dynamic config file, as a killed old Hub leaves it."""
    Path(path).write_text(legacy_file_text(Path(path).suffix, targets))


def write_legacy_etcd(url: str, writes: Iterable[Mapping[str, str]], **client_kwargs) -> None:
    """Each write as one etcd transaction of puts, as the old TraefikEtcdProxy did."""
    import etcd3

    parts = urlsplit(url)
    client = etcd3.client(parts.hostname, parts.port, **client_kwargs)
    try:
        for write in writes:
            ok, _ = client.transaction(
                compare=[], success=[client.transactions.put(k, v) for k, v in write.items()], failure=[]
            )
            assert ok, f"etcd refused {sorted(write)}"
    finally:
        client.close()


def write_legacy_redis(
    url: str, writes: Iterable[Mapping[str, str]], username: str = "", password: str = ""
) -> None:
    """Each write as one MSET of plain string keys, as the old TraefikRedisProxy did."""
    import redis

    parts = urlsplit(url)
    client = redis.Redis(
        host=parts.hostname, port=parts.port or 6379, username=username or None, password=password or None
    )
    try:
        for write in writes:
            client.mset(dict(write))
    finally:
        client.close()


def write_legacy_consul(url: str, writes: Iterable[Mapping[str, str]], token: str = "") -> None:
    """Each write as one ``PUT /v1/txn`` of ``set`` verbs, as the old TraefikConsulProxy did."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Consul-Token"] = token
    for write in writes:
        payload = [
            {"KV": {"Verb": "set", "Key": k, "Value": base64.b64encode(v.encode()).decode()}}
            for k, v in write.items()
        ]
        request = urllib.request.Request(
            f"{url.rstrip('/')}/v1/txn", data=json.dumps(payload).encode(), headers=headers, method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.read()


def write_legacy_store(server, writes: Iterable[Mapping[str, str]]) -> None:
    """The writes into a :class:`tests.servers.KVServer` of any kind."""
    if server.kind == "etcd":
        login = {"user": server.username, "password": server.password} if server.password else {}
        write_legacy_etcd(server.url, writes, **server.client_kwargs, **login)
    elif server.kind == "redis":
        write_legacy_redis(server.url, writes, server.username, server.password)
    elif server.kind == "consul":
        write_legacy_consul(server.url, writes, server.password)
    else:
        raise ValueError(f"unknown store kind {server.kind!r}")
