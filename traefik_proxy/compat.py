"""Helpers of jupyterhub-traefik-proxy's ``traefik_utils``, for code written for it.

Code that subclassed the older project's classes often used its
``traefik_utils.deep_merge``, which merges *in place*. It is kept here with
that behaviour, so such code runs unchanged after its imports move to
``traefik_proxy``. New code should use :func:`traefik_proxy.core.deep_merge`,
which returns a new dict and leaves its arguments alone.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(a: MutableMapping[str, Any], b: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Merge ``b`` into ``a`` in place and return ``a``: dicts merge key by
    key, any other value of ``b`` replaces ``a``'s."""
    for key, value in b.items():
        if isinstance(value, MutableMapping) and isinstance(a.get(key), MutableMapping):
            deep_merge(a[key], value)
        else:
            a[key] = value
    return a
