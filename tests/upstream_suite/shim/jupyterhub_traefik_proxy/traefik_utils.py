"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.traefik_utils` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

traefik_utils.* <- traefik_proxy.compat.* (deep_merge, generate_rule,
generate_alias, TraefikConfigFileHandler, atomic_writing)
"""

from traefik_proxy.compat import *  # noqa: F403
