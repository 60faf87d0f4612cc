"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.kv_proxy` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

kv_proxy.TKvProxy <- traefik_proxy.kv.TKvProxy
"""

from traefik_proxy.kv import TKvProxy

__all__ = ["TKvProxy"]
