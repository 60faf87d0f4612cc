"""The route tree in the shell: its settings, the table of written routes, re-layout at start.

:mod:`traefik_proxy.core.routing` decides where each router hangs; this part
of :class:`~traefik_proxy.proxy.TraefikProxy` keeps the
:class:`~traefik_proxy.core.RouteTable` that decisions need (filled from the
store's route records, updated after each write that completed), and at start
rewrites the routers that a store written with other settings (today's flat
layout, another depth) holds, so every route hangs where these settings say.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from traitlets import Integer, default, validate
from traitlets.config import Configurable

from . import core
from .setting_checks import refuse_negative


class RouteTreeMixin(Configurable):
    """Mixin of :class:`~traefik_proxy.proxy.TraefikProxy` (see the module's docstring)."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy and of its
        # TraefikConfig part, which the class combining them defines (see
        # proxy.py). Nothing here exists at run time.
        log: logging.Logger

        @property
        def settings(self) -> core.Settings: ...
        async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]: ...
        async def _apply_changes(self, changes: core.Changes) -> None: ...

    traefik_route_tree_bucket_size = Integer(
        32,
        config=True,
        help="""The most user names a bucket of the route tree holds: routes hang under
        routers for their names' leading characters (Traefik's multi-layer routing), so
        a request is matched against a few dozen routers instead of every route. A
        bucket with more names splits by their next character, and merges back when
        they leave, so the tree adapts to any names (u00001, u00002, ... as well as
        random ones). Host routes (subdomains) keep the fixed tree. 0: the fixed tree of traefik_route_tree_depth levels
        for every route, as in earlier versions.""",
    )
    traefik_route_tree_depth = Integer(
        2,
        config=True,
        help="""0 puts every route on the public entrypoint, as jupyterhub-traefik-proxy
        does (no route tree). Otherwise, with traefik_route_tree_bucket_size = 0, the
        levels of a fixed tree: /user/alice/ hangs under routers for /user/a and
        /user/al (a host route alice.hub.example/ under hosts starting with a and al);
        with shards, the levels of the front's tree, whose deepest buckets pick a
        route's shard.""",
    )
    traefik_route_tree_segment = Integer(
        config=True,
        help="""Which path segment of a route the tree buckets by (0-based): the one
        holding the user name. Default: one more than JupyterHub's base_url has
        (1 for /user/<name>/ under base_url /).""",
    )

    @default("traefik_route_tree_segment")
    def _default_tree_segment(self) -> int:
        base_url = getattr(getattr(self, "app", None), "base_url", None) or "/"
        return len([s for s in urlsplit(base_url).path.split("/") if s]) + 1

    @validate("traefik_route_tree_depth", "traefik_route_tree_segment", "traefik_route_tree_bucket_size")
    def _not_negative(self, proposal):
        return refuse_negative(proposal)

    _route_table: core.RouteTable | None = None

    async def _get_traefik_dynamic_config(self) -> dict[str, Any]:
        """Traefik's dynamic config as stored (nested)."""
        raise NotImplementedError

    async def _load_route_table(self) -> core.RouteTable:
        """The routes written so far, from the store's records (once, or after a failed write)."""
        if self._route_table is None:
            self._fill_route_table(await self._get_jupyterhub_dynamic_config())
        assert self._route_table is not None
        return self._route_table

    def _fill_route_table(self, records: dict[str, str]) -> None:
        settings = self.settings
        self._route_table = core.RouteTable(
            (core.decode_route(raw) for raw in records.values()),
            tree_segment=settings.tree_segment,
            tree_depth=settings.tree_depth,
            bucket_size=settings.tree_bucket_size,
        )

    async def _relayout_routes(self) -> None:
        """Rewrite the routers that hang elsewhere than these settings say
        (a store from before the tree, or with another depth); drop buckets
        no route uses. Nothing is written when the store already agrees.
        The route table is filled from the records read here."""
        self._route_table = None
        records = await self._get_jupyterhub_dynamic_config()
        self._fill_route_table(records)
        if not records and not self.traefik_route_tree_depth:
            return
        stored = await self._get_traefik_dynamic_config()
        changes, rewritten, removed = core.relayout(records, stored, self.settings)
        if rewritten or removed:
            shape = (
                f"buckets of at most {self.traefik_route_tree_bucket_size} names"
                if self.traefik_route_tree_bucket_size
                else f"depth {self.traefik_route_tree_depth}"
            )
            self.log.info(
                "Route tree (%s, segment %d): rewrote %d routers, removed %d unused",
                shape,
                self.traefik_route_tree_segment,
                rewritten,
                removed,
            )
            await self._apply_changes(changes)
