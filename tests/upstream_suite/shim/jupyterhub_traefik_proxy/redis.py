"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.redis` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

redis.TraefikRedisProxy <- traefik_proxy.redis.TraefikRedisProxy
"""

from traefik_proxy.redis import TraefikRedisProxy

__all__ = ["TraefikRedisProxy"]
