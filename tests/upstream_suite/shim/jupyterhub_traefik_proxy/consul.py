"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.consul` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

consul.TraefikConsulProxy <- traefik_proxy.consul.TraefikConsulProxy
"""

from traefik_proxy.consul import TraefikConsulProxy

__all__ = ["TraefikConsulProxy"]
