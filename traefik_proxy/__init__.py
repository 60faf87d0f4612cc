"""traefik-proxy: a JupyterHub proxy on Traefik v3.

Proxy classes (need JupyterHub): :class:`TraefikFileProviderProxy`,
:class:`TKvProxy` and its etcd/Redis/Consul subclasses. The pure functional
core, usable without JupyterHub, is :mod:`traefik_proxy.core`.
"""

__version__ = "0.1.0"


#: proxy class -> the module defining it, imported on first use, so that
#: ``import traefik_proxy.core`` does not pull in JupyterHub
_PROXY_CLASSES = {
    "TraefikProxy": "proxy",
    "TraefikFileProviderProxy": "fileprovider",
    "TraefikTomlProxy": "fileprovider",
    "TKvProxy": "kv",
    "TraefikEtcdProxy": "etcd",
    "TraefikRedisProxy": "redis",
    "TraefikConsulProxy": "consul",
}


def __getattr__(name):
    if name not in _PROXY_CLASSES:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f".{_PROXY_CLASSES[name]}", __name__), name)
