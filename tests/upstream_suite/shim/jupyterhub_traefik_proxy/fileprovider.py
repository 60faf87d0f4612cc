"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.fileprovider` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

fileprovider.TraefikFileProviderProxy <- traefik_proxy.fileprovider.TraefikFileProviderProxy
"""

from traefik_proxy.fileprovider import TraefikFileProviderProxy

__all__ = ["TraefikFileProviderProxy"]
