"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.proxy` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

proxy.TraefikProxy <- traefik_proxy.proxy.TraefikProxy
"""

from traefik_proxy.proxy import TraefikProxy

__all__ = ["TraefikProxy"]
