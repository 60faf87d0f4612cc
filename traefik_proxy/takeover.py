"""What others left in Traefik when the Hub starts: taken over, or named.

Two kinds of routers can take requests meant for the Hub's routes:

- jupyterhub-traefik-proxy's, when an operator switches over and keeps its
  store or dynamic config file: they carry no priority, so they outrank ours.
  Before traefik reads the store (at start, or before the first write to an
  external traefik) the subclass's ``_migrate_legacy_layout`` turns the old
  route records into ours and removes the old routers, services and
  middlewares, as :func:`traefik_proxy.core.plan_file_migration` and
  :func:`~traefik_proxy.core.plan_kv_migration` plan it; this logs what was
  done, one line per kind.
- routers of other providers or tools on the public entrypoint: once traefik
  serves they are named in one warning (:mod:`traefik_proxy.core.foreign`
  decides which).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import core

if TYPE_CHECKING:
    from .traefik_api import TraefikAPI


def log_migration(log: logging.Logger, migration: core.Migration) -> None:
    """One line per kind of thing migrated or removed; invalid records as a warning."""
    for kind, line in migration.summary().items():
        if kind == "invalid":
            log.warning(line)
        else:
            log.info(line)


class Takeover:
    """Mixin of :class:`~traefik_proxy.proxy.TraefikProxy` (see the module's docstring)."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy, which defines it
        # (see proxy.py). Nothing here exists at run time.
        log: logging.Logger
        provider_name: str
        traefik_namespace: str
        traefik_entrypoint: str
        traefik_pin_host: str

        @property
        def _api(self) -> TraefikAPI: ...
        async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]: ...

    async def _migrate_legacy_layout(self) -> core.Migration:
        """Carry out the takeover of the old project's layout in the store and
        say what was done. Here: nothing, for a store it cannot have written."""
        return core.Migration()

    async def _take_over_legacy_layout(self) -> None:
        log_migration(self.log, await self._migrate_legacy_layout())

    async def _warn_about_foreign_routers(self) -> None:
        """Name, in one warning, the routers on the public entrypoint this Hub
        did not write that outrank one of its routes. Advice only: a failure
        to check is logged, never raised."""
        try:
            routers = await self._api.list_routers()
            records = await self._get_jupyterhub_dynamic_config()
            routespecs = {"/", *(core.decode_route(r).routespec for r in records.values())}
            found = core.foreign_routers(
                routers,
                provider=self.provider_name,
                namespace=self.traefik_namespace,
                entrypoint=self.traefik_entrypoint,
                hub_routespecs=routespecs,
                pin_host=self.traefik_pin_host,
            )
        except Exception as e:
            self.log.warning("Could not check Traefik's routers for foreign ones: %s", e)
            return
        if found:
            self.log.warning(core.foreign_routers_warning(found, self.traefik_entrypoint))
