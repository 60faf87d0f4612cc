"""jupyterhub-traefik-proxy's ``traefik_utils``, for code written for it.

Code that subclassed the older project's classes often imported its helpers
from ``jupyterhub_traefik_proxy.traefik_utils``. The ones such code used are
kept here, with the older behaviour, so it runs once its imports say
``traefik_proxy.compat``:

- :func:`deep_merge` merges *in place* (new code: :func:`traefik_proxy.core.deep_merge`,
  which returns a new dict and leaves its arguments alone);
- :func:`generate_rule` and :func:`generate_alias`: the older project's rule
  and router/service names of a routespec (ours are in
  :func:`traefik_proxy.core.route_fragment`; these are what
  :mod:`traefik_proxy.core.migration` recognises when taking over its layout);
- :func:`atomic_writing` and :class:`TraefikConfigFileHandler`: TOML/YAML files
  replaced whole, through :mod:`traefik_proxy.files`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

from .core.migration import legacy_alias as generate_alias
from .core.migration import legacy_rule as generate_rule
from .files import atomic_write, dump_config, load_config

__all__ = ["TraefikConfigFileHandler", "atomic_writing", "deep_merge", "generate_alias", "generate_rule"]


def deep_merge(a: MutableMapping[str, Any], b: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Merge ``b`` into ``a`` in place and return ``a``: dicts merge key by
    key, any other value of ``b`` replaces ``a``'s."""
    for key, value in b.items():
        if isinstance(value, MutableMapping) and isinstance(a.get(key), MutableMapping):
            deep_merge(a[key], value)
        else:
            a[key] = value
    return a


@contextlib.contextmanager
def atomic_writing(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """A file to write ``path``'s new content to: it replaces ``path`` whole
    when the block ends, and is removed (``path`` untouched) if the block raises."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class TraefikConfigFileHandler:
    """A TOML or YAML config file (by its extension), read and written whole."""

    def __init__(self, file_path: str):
        self.file_path = file_path

    def load(self) -> dict[str, Any]:
        return load_config(Path(self.file_path))

    def atomic_dump(self, data: dict[str, Any]) -> None:
        path = Path(self.file_path)
        atomic_write(path, dump_config(data, path), mode=0o644)

    dump = atomic_dump
