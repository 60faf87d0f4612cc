"""TEST-ONLY shim (tests/upstream_suite): `jupyterhub_traefik_proxy.toml` of
jupyterhub-traefik-proxy 2.1.0, mapped onto this project's names so that
project's own test suite runs against our classes. A pure re-export: no logic.

toml.TraefikTomlProxy <- traefik_proxy.fileprovider.TraefikTomlProxy
"""

from traefik_proxy.fileprovider import TraefikTomlProxy

__all__ = ["TraefikTomlProxy"]
