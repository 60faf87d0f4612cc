"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.etcd` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

etcd.TraefikEtcdProxy <- traefik_proxy.etcd.TraefikEtcdProxy
"""

from traefik_proxy.etcd import TraefikEtcdProxy

__all__ = ["TraefikEtcdProxy"]
