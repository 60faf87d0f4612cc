"""Shards in the shell: K shard proxies behind this proxy's Traefik (the front).

:mod:`traefik_proxy.core.shards` decides where a route lives and what the
front routes where; this module runs it. With ``traefik_shards = K`` the
proxy the Hub made is the *front*: its own Traefik, store and records hold
the flat routes (the Hub's ``/``) and the front tree. It makes K *shard*
proxies of its own class, each a whole proxy with its own Traefik (public
entrypoint and API on loopback), its own dynamic config (a file beside the
front's, or its own prefixes of the same key-value store) and its own route
records, and hands every route to the ones that must serve it:

- a user route to its shard, the shard of the front bucket it hangs in
  (:func:`~traefik_proxy.core.route_shard`); once the shard serves it, the
  front's bucket for it (when new), and add_route returns once the front
  serves that too;
- when an add splits a front bucket (``traefik_shard_bucket_size``), the
  routes that fall into a new bucket of another shard move there: set in
  their new shard, then the new bucket written in the front, then deleted
  from the old shard (with its next add, as a waiting delete is); until the
  new bucket is served, the old bucket's rest sends them to the old shard;
- a flat route to the front and every shard;
- a user route's delete waits (``traefik_shard_delete_delay``) for the next
  add to its shard and is written with it: a spawn storm's add and delete
  then cost one reload, not two. Meanwhile the route is already gone from
  get_all_routes and get_route, and only its router lingers, pointing at a
  server that stopped. A Hub killed meanwhile leaves the route in the store;
  JupyterHub's check_routes deletes it again.

At start, routes found elsewhere than K says (a store written without
shards, or with another K) move: set where they belong, then deleted where
they were. Each shard's traefik is supervised like the front's: restarted
when it dies, it reads its store again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Dict, Float, Integer, List, Unicode, validate
from traitlets.config import Configurable

from . import core
from .coalesce import Coalescer
from .setting_checks import refuse_negative
from .traefik_process import TraefikSupervisor

#: TraefikProxy settings a shard copies from the front (the rest are the
#: front's alone: public URL, TLS, Let's Encrypt, replicas, extra configs)
SHARED_SETTINGS = (
    "check_route_timeout",
    "concurrency",
    "enable_setup_dynamic_config",
    "should_start",
    "traefik_activity_interval",
    "traefik_api_entrypoint",
    "traefik_api_hashed_password",
    "traefik_api_password",
    "traefik_api_password_hash",
    "traefik_api_password_hash_rounds",
    "traefik_api_username",
    "traefik_command",
    "traefik_default_cert",
    "traefik_error_pages",
    "traefik_log_level",
    "traefik_namespace",
    "traefik_pin_host",
    "traefik_poll_interval",
    "traefik_providers_throttle_duration",
    "traefik_route_tree_depth",
    "traefik_route_tree_bucket_size",
    "traefik_route_tree_segment",
    "traefik_track_activity",
)


#: what each non-negative shard setting's error suggests
_NOT_NEGATIVE = {
    "traefik_shards": "0 (one Traefik) or the number of shard Traefiks",
    "traefik_shard_bucket_size": "0 (fixed front tree) or the most names a front bucket holds (64 by default)",
}


def shard_file(path: str, k: int) -> str:
    """``rules.toml`` -> ``rules.shard-3.toml``: shard k's file beside the front's."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.shard-{k}{p.suffix}"))


def free_ports(count: int) -> list[int]:
    """``count`` different free loopback ports (all held open while picked,
    so that none is picked twice).

    Below the kernel's ephemeral range where there is room: a port the
    kernel picks (``bind(0)``) is also one it picks as the source port of
    an outgoing connection, which could take it before the shard's traefik
    binds it."""
    low = _ephemeral_low()
    sockets: list[socket.socket] = []
    try:
        candidates = random.sample(range(10000, low), min(low - 10000, 50 * count)) if low > 12000 else []
        for port in candidates:
            if len(sockets) == count:
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        while len(sockets) < count:  # no room below the ephemeral range: the kernel picks
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; else the IANA one)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


class ShardingMixin(Configurable):
    """Mixin of :class:`~traefik_proxy.proxy.TraefikProxy`: the shard settings,
    and how a shard proxy is made from the front (see the module's docstring)."""

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy (its traitlets,
        # JupyterHub's Proxy's) and of its other mixins, which the class
        # combining them defines (see proxy.py). Nothing here exists at run time.
        log: logging.Logger
        app: Any  # the JupyterHub application
        hub: Any  # jupyterhub.objects.Hub, or None outside JupyterHub
        should_start: bool
        static_config_file: str
        traefik_pid_file: str
        traefik_env: dict[str, str]
        traefik_replica_api_urls: list[str]
        traefik_route_tree_depth: int

        def _default_cert_path(self) -> Path: ...

    traefik_shards = Integer(
        0,
        config=True,
        help="""Spread user routes over this many shard Traefiks behind this one
        (the front), so that a route change reloads one shard's few hundred
        routes instead of the whole table: for Hubs with thousands of routes
        whose servers start and stop often (docs/spawn-storm.md). Every
        request then crosses two Traefiks. 0: one Traefik holds everything.
        Needs the route tree (traefik_route_tree_depth >= 1).""",
    )
    traefik_shard_delete_delay = Float(
        10.0,
        config=True,
        help="""Seconds a user route's delete may wait for the next add to its shard,
        to be written with it (one reload instead of two). The route leaves
        get_all_routes at once; its router lingers at most this long. 0 writes
        every delete at once.""",
    )
    traefik_shard_env = Dict(
        {"GOGC": "400"},
        config=True,
        help="""Environment of the shard traefiks, over traefik_env. GOGC=400 cuts the
        garbage collection that is a quarter of a reload's CPU, for a few MB
        more per shard.""",
    )
    traefik_shard_bucket_size = Integer(
        64,
        config=True,
        help="""The most user names a bucket of the front's route tree holds before it
        splits; each bucket's routes live in one shard (a hash of the bucket). So
        names that share their start (u00042, jupyter-alice) spread over the
        shards as evenly as random ones. A split moves at most this many
        routes into other shards. 0: the fixed tree of traefik_route_tree_depth
        levels, which puts names sharing their first characters in one shard.""",
    )
    traefik_shard_port = Integer(
        0,
        config=True,
        help="""First of the loopback ports of the shards: shard k's public entrypoint
        listens on this + 2k, its API on this + 2k + 1. 0: free ports, picked at
        each start. Needed with should_start = False.""",
    )
    traefik_shard_trusted_ips = List(
        Unicode(),
        ["127.0.0.1/32", "::1/128"],
        config=True,
        help="""Where a shard's entrypoint trusts X-Forwarded-* headers from: the
        front's address.""",
    )

    @validate("traefik_shards", "traefik_shard_bucket_size")
    def _shard_setting_not_negative(self, proposal):
        return refuse_negative(proposal, _NOT_NEGATIVE[proposal.trait.name])

    _shard_set: ShardSet | None = None
    #: a shard proxy, made by its front
    _is_shard = False

    def _check_shard_settings(self) -> None:
        """Refuse, before anything starts, shard settings that cannot work."""
        if not self.traefik_shards:
            return
        if not self.traefik_route_tree_depth:
            raise ValueError(
                f"traefik_shards = {self.traefik_shards} needs the route tree, which shards "
                "split by bucket, but traefik_route_tree_depth is 0; set it to 1 or more"
            )
        if self.traefik_replica_api_urls:
            raise ValueError(
                "traefik_shards does not support traefik_replica_api_urls yet; set one of them to its default"
            )
        if not self.should_start and not self.traefik_shard_port:
            raise ValueError(
                "traefik_shards with should_start = False needs the shards' ports: "
                "set c.TraefikProxy.traefik_shard_port"
            )

    def _shard_overrides(self, k: int, ports: tuple[int, int] | None = None) -> dict[str, Any]:
        """What shard k's proxy has of its own; subclasses add where its
        dynamic config lives. ``ports``: its public and API ports (default:
        from traefik_shard_port; 0 to only read or remove its store)."""
        if ports is None:
            base = self.traefik_shard_port
            ports = (base + 2 * k, base + 2 * k + 1) if base else (0, 0)
        public, api = ports
        trusted = {"forwardedHeaders": {"trustedIPs": list(self.traefik_shard_trusted_ips)}}
        return {
            "traefik_shards": 0,
            "public_url": f"http://127.0.0.1:{public}",
            "traefik_api_url": f"http://127.0.0.1:{api}",
            "traefik_entrypoint": "http",
            "static_config_file": shard_file(self.static_config_file, k),
            "traefik_pid_file": shard_file(self.traefik_pid_file, k),
            "traefik_default_cert_file": str(self._default_cert_path()),
            "traefik_env": {**self.traefik_env, **self.traefik_shard_env},
            "extra_static_config": {"entryPoints": {"http": trusted}},
        }

    def _shard_class(self) -> type[ShardingMixin]:
        """The class of the shard proxies: this one (an old name's: its new one)."""
        return type(self)

    def _make_shard(self, k: int, ports: tuple[int, int] | None = None) -> Any:
        """Shard k's proxy: this class, the shared settings, its own places
        (see :meth:`_shard_overrides` for ``ports``)."""
        from .proxy import TraefikProxy

        cls = self._shard_class()
        own = set(cls.class_trait_names(config=True)) - set(TraefikProxy.class_trait_names(config=True))
        # the subclass's own settings (its store's) that differ from their
        # defaults: never an old name left at its default (a warning per shard)
        traits = cls.class_traits()
        own = {name for name in own if getattr(self, name) != traits[name].default_value}
        copied = {
            name: getattr(self, name)
            for name in (*SHARED_SETTINGS, *sorted(own))
            if not traits[name].metadata.get("deprecated_for")
        }
        settings = {**copied, **self._shard_overrides(k, ports)}
        shard = cls(log=self.log, hub=self.hub, app=self.app, **settings)
        shard._is_shard = True
        return shard


async def leftover_shards(front: Any, first: int) -> dict[int, Any]:
    """The shard stores from a larger K than now (shard ``first`` on, up
    to the first that holds no route records), as unstarted shard
    proxies; a traefik a killed Hub left running for one is stopped."""
    found: dict[int, Any] = {}
    k = first
    while True:
        shard = front._make_shard(k)
        try:
            if not await shard._get_jupyterhub_dynamic_config():
                return found
        except Exception as e:
            # the front's own store answered just before: no such shard store
            front.log.debug("No store of shard %d to take routes from: %s", k, e)
            return found
        finally:
            await shard._close()  # opened again to move its routes, if any
        if front.should_start:
            supervisor = TraefikSupervisor(
                shard.traefik_command,
                shard.static_config_file,
                shard.traefik_pid_file,
                {},
                front.log,
            )
            await supervisor.stop_leftover()
        found[k] = shard
        k += 1


async def remove_front_tree(front: Any, keep: AbstractSet[str] = frozenset()) -> None:
    """Delete the front tree's routers (but ``keep``) and, with them, the
    shard services of a front that no longer has (as many) shards."""
    stored = (await front._get_traefik_dynamic_config()).get("http") or {}
    namespace = front.traefik_namespace
    mark = core.front_namespace(namespace) + core.TREE_MARK
    # exactly <namespace>-shard-<k>: a route's service (/shard-1/ is
    # jupyterhub-shard-1-<hash>) is never taken for one
    shard_service = re.compile(re.escape(core.shard_service_name(namespace, 0))[:-1] + r"\d+")
    kept = {core.shard_service_name(namespace, k) for k in range(front.traefik_shards)}
    delete: list[core.KeyPath] = [
        ("http", "routers", name)
        for name in stored.get("routers") or {}
        if name.startswith(mark) and name not in keep
    ] + [
        ("http", "services", name)
        for name in stored.get("services") or {}
        if shard_service.fullmatch(name) and name not in kept
    ]
    if delete:
        await front._apply_changes(core.Changes(delete=delete))
        # until they are gone, requests may still follow them to shards that
        # no longer hold those routes (or no longer run)
        routers = [path[2] for path in delete if path[1] == "routers"]
        left = await front._api.wait_for_routers(routers, present=False)
        if left:
            raise TimeoutError(
                f"the front Traefik still served {len(left)} routers of an old front tree "
                f"after check_route_timeout ({front.check_route_timeout} s), e.g. {min(left)}"
            )


async def move_misplaced(
    front: Any,
    shards: list[Any],
    leftovers: dict[int, Any],
    write_front: Any = None,
    lay_out: Callable[[list[core.Route]], core.RouteTable] | None = None,
) -> None:
    """Routes stored elsewhere than K = len(shards) puts them (in the front,
    another shard, a leftover shard): set where they belong; then
    ``write_front(routespecs)`` with every stored routespec (the front tree,
    once the shards serve them); then deleted where they were, and leftover
    stores removed. ``lay_out(routes)``: the front's tree over every stored
    route (default: the fixed tree)."""
    stores: dict[int | None, Any] = {None: front, **dict(enumerate(shards))}
    # as pairs: to mypy a dict[int, Any] is not a mapping with int | None keys
    stores.update(leftovers.items())
    held: dict[int | None, list[core.Route]] = {}
    for place, proxy in stores.items():
        records = await proxy._get_jupyterhub_dynamic_config()
        held[place] = [core.decode_route(raw) for raw in records.values()]
    layout = None
    if lay_out is not None:
        every = {r.routespec: r for routes in held.values() for r in routes}
        layout = lay_out(list(every.values()))
    moves = core.misplaced(held, front.settings, len(shards), front.host_routing, layout)
    if moves or leftovers:
        front.log.info(
            "Moving %d routes to where %d shards put them (%d shard stores left over)",
            len(moves),
            len(shards),
            len(leftovers),
        )

    def submit(place: int | None, op: core.Op) -> Any:
        # the proxies' own queues, under the front's: these are its routes' moves
        return stores[place]._coalescer.submit(op)

    await asyncio.gather(
        *(submit(p, core.Op("add", m.route.routespec, m.route)) for m in moves for p in m.to)
    )
    if write_front is not None:
        await write_front({r.routespec for routes in held.values() for r in routes})
    await asyncio.gather(
        *(
            submit(p, core.Op("delete", m.route.routespec))
            for m in moves
            for p in m.drop
            if p not in leftovers
        )
    )
    for k, shard in sorted(leftovers.items()):
        await shard._discard_store()
        await shard._close()
        front.log.info("Removed the store of shard %d, left over from a larger traefik_shards", k)


class ShardSet:
    """The running shards of one front proxy (see the module's docstring)."""

    def __init__(self, front: Any):
        self.front = front
        count = front.traefik_shards
        if front.traefik_shard_port:
            self.shards = [front._make_shard(k) for k in range(count)]
        else:
            ports = free_ports(2 * count)
            self.shards = [front._make_shard(k, (ports[2 * k], ports[2 * k + 1])) for k in range(count)]
        self.log = front.log
        self._front_buckets: set[core.Bucket] = set()
        self._front_writes: Coalescer[core.Bucket] = Coalescer(self._write_front)
        #: the front's tree: every route stored at start and added since (it
        #: only grows while the Hub runs: a bucket splits, never merges back)
        self._layout = core.front_layout((), self.settings, front.traefik_shard_bucket_size)
        #: the sharded routes held now, as last added (what a move copies)
        self._live: dict[str, core.Route] = {}
        #: adds waiting for the next layout update (one per event loop turn)
        self._placing: list[asyncio.Future[None]] = []
        self._to_place: dict[str, core.Route] = {}
        #: routes on their way to another shard: the shards they leave
        self._leaving: dict[str, set[int]] = {}
        #: front buckets that routes move into: done once their new shard serves them
        self._arrivals: dict[core.Bucket, asyncio.Future[None]] = {}
        self._movers: set[asyncio.Task[None]] = set()
        #: per shard, the routespecs whose delete waits for its next add:
        #: deleted routes (hidden from the listing) and moved-away copies (not)
        self._pending: dict[int, set[str]] = {}
        self._evictions: dict[int, set[str]] = {}
        self._flushers: dict[int, asyncio.Task[None]] = {}

    @property
    def settings(self) -> core.Settings:
        return self.front.settings

    def _shard(self, routespec: str) -> int | None:
        return core.route_shard(
            routespec, self.settings, len(self.shards), self.front.host_routing, self._layout
        )

    def _leaf(self, routespec: str) -> core.Bucket:
        """The front's bucket of a route that :meth:`_shard` gives a shard."""
        leaf = core.leaf_bucket(routespec, self.settings, self._layout)
        assert leaf is not None, "a sharded route hangs under a bucket (core.route_shard)"
        return leaf

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every shard; move the routes stored elsewhere than K says;
        write the front's services and tree; return when the front serves them."""
        count = len(self.shards)
        self.log.info("Starting %d shard traefiks", count)
        try:
            if self.front.should_start:
                await asyncio.gather(*(shard.start() for shard in self.shards))
            else:
                await asyncio.gather(*(shard._ensure_ready() for shard in self.shards))
            urls = [shard.public_url for shard in self.shards]
            await self.front._apply_changes(
                core.Changes(merge=core.front_services(self.settings.namespace, urls))
            )
            leftovers = await leftover_shards(self.front, len(self.shards))
            await move_misplaced(self.front, self.shards, leftovers, self._write_whole_front, self._lay_out)
        except BaseException:
            await self.stop(flush=False)
            raise
        self.log.info("%d shard traefiks serve %d buckets of user routes", count, len(self._front_buckets))

    def _lay_out(self, routes: list[core.Route]) -> core.RouteTable:
        """The front's tree over the routes stored at start."""
        self._layout = core.front_layout(routes, self.settings, self.front.traefik_shard_bucket_size)
        self._live = {r.routespec: r for r in routes if self.holds_alone(r.routespec)}
        return self._layout

    async def stop(self, flush: bool = True) -> None:
        """Write the deletes still waiting (unless stopping after a failure), stop the shards."""
        for task in [*self._flushers.values(), *self._movers]:
            task.cancel()
        self._flushers = {}
        if flush and (self._pending or self._evictions):
            waiting = [(k, r) for k, rs in self._pending.items() for r in rs]
            waiting += [(k, r) for k, rs in self._evictions.items() for r in rs]
            self._pending, self._evictions = {}, {}
            await asyncio.gather(
                *(self.shards[k].delete_route(r) for k, r in waiting),
                return_exceptions=True,
            )
        await asyncio.gather(*(shard.stop() for shard in self.shards), return_exceptions=True)

    # ------------------------------------------------------------ routes

    async def add_route(self, route: core.Route) -> None:
        # the route is valid (the front made it): straight into the shards'
        # queues, whose proxies are ready once the set started
        add = core.Op("add", route.routespec, route)
        if not self.holds_alone(route.routespec, refuse=True):
            await asyncio.gather(
                self.front._coalescer.submit(add),
                *(shard._coalescer.submit(add) for shard in self.shards),
            )
            return
        await self._place(route)
        # where the layout puts it now (the same unless a split came between)
        leaf = self._leaf(route.routespec)
        k = core.shard_of(leaf, len(self.shards))
        self._live[route.routespec] = route
        shard = self.shards[k]
        deletes = self._pending.pop(k, set()) | self._evictions.pop(k, set())
        deletes.discard(route.routespec)
        if not deletes:
            await shard._coalescer.submit(add)
        else:
            # submitted together, the shard's coalescer writes them in one batch
            outcomes = await asyncio.gather(
                shard._coalescer.submit(add),
                *(shard._coalescer.submit(core.Op("delete", r)) for r in deletes),
                return_exceptions=True,
            )
            self._warn_failed_deletes(k, deletes, outcomes[1:])
            if isinstance(outcomes[0], BaseException):
                raise outcomes[0]
        leaf = self._leaf(route.routespec)  # a split may have moved it meanwhile
        if leaf not in self._front_buckets:
            await self._front_writes.submit(leaf)

    async def delete_route(self, routespec: str) -> None:
        k = self._shard(routespec)
        if k is None:
            await asyncio.gather(
                self.front._coalescer.submit(core.Op("delete", routespec)),
                *(shard.delete_route(routespec) for shard in self.shards),
            )
            return
        self._live.pop(routespec, None)
        # a route on its way to another shard: from the ones it leaves too
        places = {k, *self._leaving.pop(routespec, ())}
        delay = self.front.traefik_shard_delete_delay
        if delay <= 0:
            await asyncio.gather(*(self.shards[p].delete_route(routespec) for p in places))
            return
        for place in places:
            self._pending.setdefault(place, set()).add(routespec)
            self._flush_soon(place)

    def _flush_soon(self, k: int) -> None:
        """Write shard k's waiting deletes after the delay, unless an add takes them first."""
        if k not in self._flushers or self._flushers[k].done():
            delay = self.front.traefik_shard_delete_delay
            self._flushers[k] = asyncio.create_task(self._flush_later(k, delay))

    async def _flush_later(self, k: int, delay: float) -> None:
        await asyncio.sleep(delay)
        pending = self._pending.pop(k, set()) | self._evictions.pop(k, set())
        outcomes = await asyncio.gather(
            *(self.shards[k].delete_route(r) for r in pending), return_exceptions=True
        )
        self._warn_failed_deletes(k, pending, outcomes)

    # ------------------------------------------------------------ placement and moves

    async def _place(self, route: core.Route) -> None:
        """Put a route into the front's tree. The adds of one event loop turn are
        placed together (a Hub starting adds its routes all at once), so that
        routes added together never move for each other."""
        if route.routespec in self._layout.routes:
            return  # a route added before keeps its bucket
        self._to_place[route.routespec] = route
        future = asyncio.get_running_loop().create_future()
        self._placing.append(future)
        if len(self._placing) == 1:
            asyncio.get_running_loop().call_soon(self._place_waiting)
        await future

    def _place_waiting(self) -> None:
        """Lay out the waiting adds at once; start moving the routes a split put
        into another shard."""
        futures, self._placing = self._placing, []
        routes, self._to_place = self._to_place, {}
        before = self._layout
        try:
            self._layout = before.after([(r, route) for r, route in routes.items() if r not in before.routes])
            moves = core.resharded(
                before,
                self._layout,
                self._live,
                self.settings,
                len(self.shards),
                self.front.host_routing,
            )
            if moves:
                self._start_moves(moves)
        except Exception as e:
            for future in futures:
                if not future.done():
                    future.set_exception(e)
            return
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _start_moves(self, moves: list[core.Reshard]) -> None:
        loop = asyncio.get_running_loop()
        for move in moves:
            self._leaving.setdefault(move.routespec, set()).add(move.source)
            # moving back into a shard it left: not deleted there after all
            self._evictions.get(move.target, set()).discard(move.routespec)
            if move.bucket not in self._arrivals:
                self._arrivals[move.bucket] = loop.create_future()
        task = asyncio.create_task(self._move(moves))
        self._movers.add(task)
        task.add_done_callback(self._movers.discard)

    async def _move(self, moves: list[core.Reshard]) -> None:
        """Set the moved routes in their new shards (again until they are), let
        the front write their new buckets, then delete them where they were."""
        self.log.info(
            "Moving %d routes to other shards: a front bucket split (%s)",
            len(moves),
            ", ".join(sorted({m.bucket.prefix for m in moves})[:3]),
        )
        waiting, pause = list(moves), 1.0
        while waiting:
            # a route deleted meanwhile is not set again
            waiting = [m for m in waiting if m.routespec in self._live]
            outcomes = await asyncio.gather(
                *(
                    self.shards[m.target]._coalescer.submit(
                        core.Op("add", m.routespec, self._live[m.routespec])
                    )
                    for m in waiting
                ),
                return_exceptions=True,
            )
            failed = [m for m, outcome in zip(waiting, outcomes) if outcome is not None]
            if failed:
                # meanwhile the old shard serves them (the front's new bucket waits)
                self.log.warning(
                    "Moving %d routes to other shards failed (%s); trying again in %g s",
                    len(failed),
                    next(o for o in outcomes if o is not None),
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(2 * pause, 10.0)
            waiting = failed
        buckets = sorted({m.bucket for m in moves})
        for bucket in buckets:
            arrival = self._arrivals.pop(bucket, None)
            if arrival is not None and not arrival.done():
                arrival.set_result(None)
        written = await asyncio.gather(
            *(self._front_writes.submit(b) for b in buckets), return_exceptions=True
        )
        failed_buckets = {b for b, outcome in zip(buckets, written) if outcome is not None}
        for move in moves:
            if move.bucket in failed_buckets:
                # both shards keep it; the old bucket's rest still reaches the old one
                continue
            leaving = self._leaving.get(move.routespec, set())
            if move.source in leaving and self._shard(move.routespec) != move.source:
                leaving.discard(move.source)
                if not leaving:
                    del self._leaving[move.routespec]
                self._evictions.setdefault(move.source, set()).add(move.routespec)
                self._flush_soon(move.source)
        if failed_buckets:
            self.log.warning(
                "The front did not serve %d new buckets of moved routes; their old shards keep them",
                len(failed_buckets),
            )

    def _warn_failed_deletes(self, k: int, routespecs: set[str], outcomes: list[Any]) -> None:
        """A waiting delete that fails is logged (its route shows in
        get_all_routes again, for the Hub's check_routes to delete)."""
        for routespec, outcome in zip(routespecs, outcomes):
            if isinstance(outcome, BaseException):
                self.log.warning("Deleting route %s in shard %d failed: %s", routespec, k, outcome)

    def _waiting_delete(self, routespec: str) -> bool:
        return any(routespec in pending for pending in self._pending.values())

    async def get_all_routes(self, front_routes: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The front's routes (flat) and every shard's, less the deletes waiting."""
        found = await asyncio.gather(*(shard.get_all_routes() for shard in self.shards))
        routes: dict[str, Any] = {}
        for k, shard_routes in enumerate(found):
            for routespec, route in shard_routes.items():
                # a route moving between shards: as the shard it moves to holds it
                if routespec not in routes or self._shard(routespec) == k:
                    routes[routespec] = route
        routes.update(front_routes)
        return {r: v for r, v in routes.items() if not self._waiting_delete(r)}

    def holds_alone(self, routespec: str, refuse: bool = False) -> bool:
        """Is a route one shard's (not the front's and every shard's)? Whether
        it is does not depend on the layout. ``refuse``: raise for a host
        route the front cannot shard (:func:`~traefik_proxy.core.route_shard`)."""
        try:
            return core.route_shard(routespec, self.settings, 1, self.front.host_routing) is not None
        except core.HostRouteWithoutHostRouting:
            if refuse:
                raise
            return False

    async def get_route(self, routespec: str) -> dict[str, Any] | None:
        """A user route as its shard holds it (None while its delete waits)."""
        k = self._shard(routespec)
        assert k is not None, "flat routes are the front's"
        if routespec in self._pending.get(k, ()):
            return None
        found = await self.shards[k].get_route(routespec)
        for source in self._leaving.get(routespec, ()):  # not yet in the shard it moves to
            if found is None:
                found = await self.shards[source].get_route(routespec)
        return found

    # ------------------------------------------------------------ the front tree

    async def _write_whole_front(self, routespecs: set[str]) -> None:
        """The front tree for the sharded ones of these routes (every stored
        one, each now in its shard), replacing the stored tree."""
        leaves = {self._leaf(routespec) for routespec in routespecs if self._shard(routespec) is not None}
        errors = await self._write_front(sorted(leaves), rewrite=True)
        if errors and errors[0] is not None:
            raise errors[0]  # the same for every leaf

    async def _write_front(
        self, leaves: Sequence[core.Bucket], rewrite: bool = False
    ) -> list[BaseException | None]:
        """The front's routers for new leaf buckets (and the buckets above
        them), then wait until the front serves them. ``rewrite``: the whole
        tree, replacing whatever front tree the store held."""
        new = core.with_parents(leaves)
        if not rewrite:
            new -= self._front_buckets
        arrivals = [self._arrivals[b] for b in new if b in self._arrivals]
        if arrivals:
            # routes moving into these buckets: their new shard must serve them first
            timeout = self.front.check_route_timeout
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*arrivals)), timeout)
            except TimeoutError:
                error = TimeoutError(
                    f"routes moving into {len(arrivals)} new front buckets were not served by "
                    f"their new shards within check_route_timeout ({timeout} s)"
                )
                return [error] * len(leaves)
        tree = core.front_tree(new, self.settings, len(self.shards))
        routers = (tree.get("http") or {}).get("routers") or {}
        if tree:
            stale: list[core.KeyPath] = []
            if rewrite:
                # an older front tree's leaf buckets had their shard as service:
                # now their rest has it
                stored = ((await self.front._get_traefik_dynamic_config()).get("http") or {}).get(
                    "routers"
                ) or {}
                stale = [
                    ("http", "routers", name, "service")
                    for name, router in routers.items()
                    if "service" not in router and "service" in (stored.get(name) or {})
                ]
            if rewrite:
                # the whole tree at start, in one write (parents first): written
                # children first, each router whose parent is not there yet is an
                # error Traefik logs at every reload meanwhile (thousands at 10,000 routes)
                await self.front._apply_changes(core.Changes(merge=tree, delete=stale))
            else:
                # a split while the Hub runs, children first (core.front_tree_steps):
                # a new bucket is reachable only once everything under it is written
                # (Traefik logs "No valid entryPoint" for the few routers waiting meanwhile)
                for step in core.front_tree_steps(tree):
                    await self.front._apply_changes(core.Changes(merge=step))
        # each with its service: a rewritten router (K changed) counts once it
        # sends its bucket to the new shard
        services = {name: router.get("service", "") for name, router in routers.items()}
        missing = await self.front._api.wait_for_routers(services)
        if rewrite and not missing:
            await remove_front_tree(self.front, keep=set(routers))
        if missing:
            error = TimeoutError(
                f"the front Traefik did not serve {len(missing)} bucket routers within "
                f"check_route_timeout ({self.front.check_route_timeout} s), e.g. {min(missing)}"
            )
            return [error] * len(leaves)
        self._front_buckets |= new
        return [None] * len(leaves)
