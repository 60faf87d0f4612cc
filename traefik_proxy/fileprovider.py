"""TraefikFileProviderProxy: the dynamic config lives in one TOML or YAML file.

The file holds Traefik's dynamic config plus a ``jupyterhub.routes`` section
of route records (Traefik ignores keys it does not know). It is always whole:
each change is written to a temporary file, fsynced and renamed into place.
A file jupyterhub-traefik-proxy left (its records are tables, ours JSON
strings) is taken over in one such write before traefik reads it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
from traitlets import Unicode

from . import core
from .core.serialize import Memo
from .files import TEMP_PREFIX, TEMP_SUFFIX, atomic_write, config_format, dump_config, load_config
from .proxy import TraefikProxy
from .setting_checks import deprecated_alias, deprecated_class
from .sharding import shard_file

RECORDS_KEY = "jupyterhub"


class TraefikFileProviderProxy(TraefikProxy):
    """JupyterHub proxy with Traefik's dynamic config in a .toml/.yaml file."""

    provider_name = "file"

    dynamic_config_file = Unicode(
        "rules.toml",
        config=True,
        help="The dynamic config file Traefik watches (.toml, .yaml or .yml)",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._document: dict[str, Any] = {}
        self._stat: tuple[int, int, int] | None = None
        self._write_lock = asyncio.Lock()
        self._cleaned = False
        self._memo = Memo()

    @property
    def _path(self) -> Path:
        return Path(self.dynamic_config_file)

    def _shard_overrides(self, k: int, ports: tuple[int, int] | None = None) -> dict[str, Any]:
        own = {"dynamic_config_file": shard_file(self.dynamic_config_file, k)}
        return {**super()._shard_overrides(k, ports), **own}

    async def _discard_store(self) -> None:
        """Remove the dynamic config file (a leftover shard's)."""
        self._path.unlink(missing_ok=True)

    async def _setup_traefik_static_config(self) -> None:
        config_format(self._path)  # an unknown extension fails before traefik starts
        path = os.path.abspath(self.dynamic_config_file)  # noqa: ASYNC240 (no I/O but getcwd)
        provider = {"file": {"filename": path, "watch": True}}
        self.static_config = core.deep_merge(self.static_config, {"providers": provider})
        await super()._setup_traefik_static_config()

    def _current(self) -> dict[str, Any]:
        """The file's content, re-read only when someone else changed it."""
        if not self._cleaned:
            self._remove_stale_temp_files()
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._document, self._stat = {}, None
            return self._document
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._stat:
            document = load_config(self._path)
            _check_records(document, self._path)
            self._document, self._stat = document, key
        return self._document

    def _remove_stale_temp_files(self) -> None:
        """Temp files a killed Hub left mid-write; the real file is intact."""
        self._cleaned = True
        directory = self._path.parent
        for stale in directory.glob(f"{TEMP_PREFIX}{self._path.name}.*{TEMP_SUFFIX}"):
            self.log.warning("Removing %s, left by an interrupted write", stale)
            stale.unlink(missing_ok=True)

    async def _apply_changes(self, changes: core.Changes) -> None:
        async with self._write_lock:
            await self._write(changes.apply_to(self._current(), RECORDS_KEY))

    async def _write(self, document: dict[str, Any]) -> None:
        content = dump_config(document, self._path, self._memo)
        await asyncio.to_thread(atomic_write, self._path, content)
        st = os.stat(self._path)
        self._document, self._stat = document, (st.st_ino, st.st_mtime_ns, st.st_size)

    async def _migrate_legacy_layout(self) -> core.Migration:
        """The old project's records become ours and its routers, services and
        middlewares go, in one write; read without :func:`_check_records`,
        which refuses its records."""
        async with self._write_lock:
            try:
                document = load_config(self._path)
            except FileNotFoundError:
                return core.Migration()
            migration = core.plan_file_migration(
                document, records_key=RECORDS_KEY, namespace=self.traefik_namespace
            )
            if not migration.is_empty():
                document = migration.additions(self.settings).apply_to(document, RECORDS_KEY)
                await self._write(migration.removals().apply_to(document, RECORDS_KEY))
            return migration

    async def _get_traefik_dynamic_config(self) -> dict[str, Any]:
        return {k: v for k, v in self._current().items() if k != RECORDS_KEY}

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        return dict((self._current().get(RECORDS_KEY) or {}).get("routes") or {})

    async def _get_route_record(self, name: str) -> str | None:
        return ((self._current().get(RECORDS_KEY) or {}).get("routes") or {}).get(name)


class TraefikTomlProxy(TraefikFileProviderProxy):
    """Deprecated name (and ``traefik_toml`` entry point) of TraefikFileProviderProxy,
    kept for configs written for jupyterhub-traefik-proxy."""

    toml_dynamic_config_file = deprecated_alias("dynamic_config_file", "1.0")

    def _shard_class(self) -> type[TraefikFileProviderProxy]:
        return TraefikFileProviderProxy

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        old, new = "TraefikTomlProxy ('traefik_toml')", "TraefikFileProviderProxy ('traefik_file')"
        deprecated_class(self.log, old, new)


def _check_records(document: dict[str, Any], path: Path) -> None:
    """Refuse a file whose route records are not ours, rather than misread them."""
    section = document.get(RECORDS_KEY, {})
    routes = section.get("routes", {}) if isinstance(section, dict) else None
    if not isinstance(routes, dict):
        raise ValueError(
            f"dynamic config file {str(path)!r}: [{RECORDS_KEY}] must be a table with a "
            f"'routes' table of route records; fix or remove that section"
        )
    for name, raw in routes.items():
        try:
            core.decode_route(raw)
        except (msgspec.DecodeError, TypeError) as e:
            raise ValueError(
                f"dynamic config file {str(path)!r}: route record {name!r} is not a valid "
                f"JSON route record ({e}); fix or remove it"
            ) from None
