"""traefik-proxy: a JupyterHub proxy on Traefik v3.

Proxy classes (need JupyterHub): :class:`TraefikFileProviderProxy`,
:class:`TKvProxy` and its etcd/Redis/Consul subclasses. The pure functional
core, usable without JupyterHub, is :mod:`traefik_proxy.core`.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # import the proxy classes lazily: `import traefik_proxy.core` must not
    # pull in JupyterHub
    if name == "TraefikProxy":
        from .proxy import TraefikProxy

        return TraefikProxy
    if name == "TraefikFileProviderProxy":
        from .fileprovider import TraefikFileProviderProxy

        return TraefikFileProviderProxy
    if name == "TKvProxy":
        from .kv import TKvProxy

        return TKvProxy
    if name == "TraefikEtcdProxy":
        from .etcd import TraefikEtcdProxy

        return TraefikEtcdProxy
    if name == "TraefikRedisProxy":
        from .redis import TraefikRedisProxy

        return TraefikRedisProxy
    if name == "TraefikConsulProxy":
        from .consul import TraefikConsulProxy

        return TraefikConsulProxy
    raise AttributeError(name)
