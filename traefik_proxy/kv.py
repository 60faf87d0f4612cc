"""TKvProxy: Traefik's dynamic config and the route records in a key-value store.

Traefik's KV providers (etcd, Redis, Consul) read the dynamic config as flat
keys under a root key (``traefik/http/routers/<name>/rule``…). This adapter
turns each batch of changes (:class:`traefik_proxy.core.Changes`) into the
write plan of :mod:`traefik_proxy.core.kv` (which keys, in which order, in
which transactions) and carries it out on the store it holds
(:class:`traefik_proxy.stores.KVStore`, made by each subclass's
``_make_store``) through three primitives: :meth:`TKvProxy._kv_atomic_set`,
:meth:`TKvProxy._kv_atomic_delete` and :meth:`TKvProxy._kv_get_tree`.

JupyterHub's route records live beside Traefik's keys, under
``{kv_jupyterhub_prefix}/routes/<route name>``, each one JSON string, so data
keeps its JSON types in every store.

When the store does not answer, every store call is retried with backoff
until ``check_route_timeout`` is nearly spent, then fails with
:class:`KVStoreUnavailable`, which names the store. A store can come back
without its data (Redis without persistence): the Hub's own dynamic config
(the API router Traefik's confirmations go through) is written again with
the next change after an outage, or as soon as a store reports it lost its
keys; the routes themselves come back with JupyterHub's ``check_routes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from traitlets import Unicode, validate

from . import core
from .kv_migration import KvMigration
from .proxy import TraefikProxy
from .stores.base import KVStore, store_call_deadline
from .stores.methods import MethodsStore

T = TypeVar("T")

#: transactions of one step (core.plan_set_steps) sent at once
KV_WRITES_IN_FLIGHT = 8

#: the methods a store of one's own implements (the older project's recipe), and their arguments
KV_METHODS = {"_kv_atomic_set": "(to_set)", "_kv_atomic_delete": "(*keys)", "_kv_get_tree": "(prefix)"}

__all__ = ["KVStoreUnavailable", "TKvProxy", "check_store_url", "store_call_deadline"]


def check_store_url(trait: str, value: str, schemes: tuple[str, ...], form: str):
    """Validate a store URL traitlet: one of ``schemes`` and a host, or a
    ValueError naming the traitlet, the value and the expected ``form``."""
    url = urlsplit(value)
    if url.scheme not in schemes or not url.hostname:
        raise ValueError(f"{trait} {value!r} must be {form}")
    return url


class KVStoreUnavailable(ConnectionError):
    """The key-value store did not answer within ``check_route_timeout``.

    Raised by every proxy method that needs the store while it is down; the
    message names the store (never its credentials) and the last error.
    """


class TKvProxy(KvMigration, TraefikProxy):
    """Base of the proxies whose dynamic config lives in a key-value store.

    Subclasses set ``provider_name``, add their provider to Traefik's static
    config and make their store in :meth:`_make_store`.
    """

    kv_traefik_prefix = Unicode(
        "traefik",
        config=True,
        help="""The key under which Traefik's dynamic config is written; Traefik's
        provider rootKey. Several Hubs sharing a store need different prefixes.""",
    )
    kv_jupyterhub_prefix = Unicode(
        "jupyterhub",
        config=True,
        help="The key under which JupyterHub's route records are written.",
    )
    kv_separator = Unicode(
        "/",
        config=True,
        help="Separator of key path components; Traefik's KV providers use '/'.",
    )

    @validate("kv_traefik_prefix", "kv_jupyterhub_prefix")
    def _validate_prefix(self, proposal):
        value = proposal.value
        sep = self.kv_separator if "kv_separator" in self._trait_values else "/"
        if not value or value.endswith(sep) or value.startswith(sep):
            raise ValueError(
                f"{proposal.trait.name} {value!r} must be non-empty and must not start or "
                f"end with {sep!r}; e.g. 'traefik' or 'hubs/hub1/traefik'"
            )
        return value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.kv_traefik_prefix == self.kv_jupyterhub_prefix or any(
            a.startswith(b + self.kv_separator)
            for a, b in [
                (self.kv_traefik_prefix, self.kv_jupyterhub_prefix),
                (self.kv_jupyterhub_prefix, self.kv_traefik_prefix),
            ]
        ):
            raise ValueError(
                f"kv_traefik_prefix {self.kv_traefik_prefix!r} and kv_jupyterhub_prefix "
                f"{self.kv_jupyterhub_prefix!r} must not contain each other: Traefik would "
                "read JupyterHub's route records as its config"
            )
        self._kv_store: KVStore | None = None
        self._kv_write_lock = asyncio.Lock()
        # the Hub's own dynamic config (API router, TLS) as flat keys, and
        # whether the store may have lost it (see _apply_changes)
        self._kv_setup_keys: dict[str, str] = {}
        self._kv_setup_lost = False

    def _shard_overrides(self, k: int, ports: tuple[int, int] | None = None) -> dict[str, Any]:
        """Shard k's prefixes: ``hubs/hub1/traefik`` -> ``hubs/hub1/shard-3.traefik``.
        Never an extension of the front's own (``traefik-shard-3``): Traefik
        reads a rootKey as a plain string prefix, so the front would read
        the shards' keys as its own."""

        def shard_prefix(prefix: str) -> str:
            head, sep, last = prefix.rpartition(self.kv_separator)
            return f"{head}{sep}shard-{k}.{last}"

        return {
            **super()._shard_overrides(k, ports),
            "kv_traefik_prefix": shard_prefix(self.kv_traefik_prefix),
            "kv_jupyterhub_prefix": shard_prefix(self.kv_jupyterhub_prefix),
        }

    async def _discard_store(self) -> None:
        """Delete every key under both prefixes (a leftover shard's)."""
        subtrees = [p + self.kv_separator for p in (self.kv_traefik_prefix, self.kv_jupyterhub_prefix)]
        await self._kv_call("delete", self._kv_atomic_delete, *subtrees, deadline=self._kv_deadline())

    # ------------------------------------------------------------ the store

    def _make_store(self) -> KVStore:
        """The store this proxy writes to, from its traitlets.

        The stores here implement it; a subclass that implements the three
        ``_kv_*`` methods instead (the older project's recipe) gets them as
        its store.
        """
        own = [name for name in KV_METHODS if getattr(type(self), name) is not getattr(TKvProxy, name)]
        if len(own) == len(KV_METHODS):
            return MethodsStore(self)
        missing = [f"{name}{KV_METHODS[name]}" for name in KV_METHODS if name not in own]
        raise NotImplementedError(
            f"{type(self).__name__} has no key-value store: implement "
            + (
                f"{' and '.join(missing)} (it has {', '.join(own)})"
                if own
                else "the three methods _kv_atomic_set(to_set), _kv_atomic_delete(*keys) and "
                "_kv_get_tree(prefix)"
            )
            + ", or _make_store() returning a traefik_proxy.stores.KVStore"
        )

    @property
    def provider_name(self) -> str:  # type: ignore[override]
        """Traefik's name of the provider (``name@provider`` in its API): set
        by each store's class; for one that does not, the single provider it
        puts in the static config."""
        providers = set(self.traefik_static_config().get("providers", {})) - {"providersThrottleDuration"}
        if len(providers) != 1:
            raise ValueError(
                f"{type(self).__name__} must say which Traefik provider reads its store: set the "
                f"class attribute provider_name (e.g. 'etcd'); its static config has {sorted(providers)}"
            )
        return providers.pop()

    @property
    def kv_store(self) -> KVStore:
        """The store, made on first use and again after :meth:`_close`."""
        if self._kv_store is None:
            self._kv_store = self._make_store()
        return self._kv_store

    @property
    def kv_layout(self) -> core.KeyLayout:
        """Where this Hub's keys are (see :mod:`traefik_proxy.core.kv`)."""
        return core.KeyLayout(
            traefik_prefix=self.kv_traefik_prefix,
            jupyterhub_prefix=self.kv_jupyterhub_prefix,
            sep=self.kv_separator,
        )

    @property
    def kv_max_txn_ops(self) -> int | None:
        """Most operations the store takes in one transaction (None: no limit)."""
        return self.kv_store.limits.max_ops

    @property
    def kv_max_txn_bytes(self) -> int | None:
        """Largest transaction the store takes, in bytes (None: no limit)."""
        return self.kv_store.limits.max_bytes

    async def _close(self) -> None:
        await super()._close()
        if self._kv_store is not None:
            store, self._kv_store = self._kv_store, None
            await store.close()

    # ------------------------------------------------------------ seams

    async def _setup_traefik_dynamic_config(self) -> None:
        await super()._setup_traefik_dynamic_config()
        # remembered once written: the first write to an empty store is not a loss
        self._kv_setup_keys = self.kv_layout.traefik_keys(self._generate_traefik_dynamic_config())
        self._kv_setup_lost = False

    async def _apply_changes(self, changes: core.Changes) -> None:
        deadline = self._kv_deadline()
        to_set, to_delete = core.kv_keys(changes, self.kv_layout)
        async with self._kv_write_lock:
            # after an outage the store may be back empty: write the Hub's
            # own config with this change (rewriting equal values is harmless)
            restoring = self._kv_setup_lost and bool(self._kv_setup_keys)
            if restoring:
                to_set = {**self._kv_setup_keys, **to_set}
                self._kv_setup_lost = False
            try:
                await self._kv_write(to_set, to_delete, deadline)
                if self._kv_setup_lost and self._kv_setup_keys and not restoring:
                    # the store failed or reported lost keys during this write
                    self.log.info("Writing the Hub's Traefik config to %s again", self.kv_store.label)
                    self._kv_setup_lost = False
                    await self._kv_write(dict(self._kv_setup_keys), [], deadline)
            except BaseException:
                if restoring:
                    self._kv_setup_lost = True
                raise

    async def _kv_write(self, to_set: dict[str, str], to_delete: list[str], deadline: float) -> None:
        layout, limits = self.kv_layout, self.kv_store.limits
        # sets first: a bucket's rest moves to its new fallback before the old one goes
        for step in core.plan_set_steps(to_set, layout, limits):
            await self._kv_write_step(step, deadline)
        for keys in core.plan_delete(to_delete, layout, limits):
            await self._kv_call("delete", self._kv_atomic_delete, *keys, deadline=deadline)

    async def _kv_write_step(self, step: list[dict[str, str]], deadline: float) -> None:
        """The transactions of one step, which commute: several in flight.

        A store takes many transactions sooner when they overlap (etcd commits
        them together), and Traefik then re-reads its prefix fewer times.
        Every transaction is waited for before an error is raised, so that
        the route table is read again from what the store holds.
        """
        if len(step) == 1:
            await self._kv_call("write", self._kv_atomic_set, step[0], deadline=deadline)
            return
        slots = asyncio.Semaphore(KV_WRITES_IN_FLIGHT)

        async def write(values: dict[str, str]) -> None:
            async with slots:
                await self._kv_call("write", self._kv_atomic_set, values, deadline=deadline)

        outcomes = await asyncio.gather(*(write(values) for values in step), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        prefix = self.kv_layout.routes_prefix
        tree = await self._kv_call("read", self._kv_read_tree, prefix)
        return {key[len(prefix) :]: value for key, value in tree.items() if key.startswith(prefix)}

    async def _get_route_record(self, name: str) -> str | None:
        key = self.kv_layout.record_key(name)
        return (await self._kv_call("read", self._kv_read_tree, key)).get(key)

    async def _get_traefik_dynamic_config(self) -> dict[str, Any]:
        """Traefik's dynamic config as stored (nested; for tests and debugging)."""
        prefix = self.kv_traefik_prefix + self.kv_separator
        tree = await self._kv_call("read", self._kv_read_tree, prefix)
        config = core.unflatten({k[len(prefix) :]: v for k, v in tree.items()}, self.kv_separator)
        # a dict: the keys under the prefix start with Traefik's sections
        # (http, tcp, tls...), never with list indices
        return cast(dict[str, Any], config)

    # ------------------------------------------------------------ store availability

    def _kv_deadline(self) -> float:
        """When a store call started now must give up (``time.monotonic()``).

        A little before check_route_timeout, so the caller gets our error
        naming the store rather than the bare timeout of the base class's
        ``asyncio.wait_for`` around ``_apply_changes``.
        """
        timeout = self.check_route_timeout
        return time.monotonic() + max(timeout - min(0.5, timeout / 10), 0.05)

    async def _kv_call(
        self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, deadline: float | None = None
    ) -> T:
        """``await fn(*args)``, retried with backoff while the store is unreachable.

        Raises :class:`KVStoreUnavailable` at ``deadline`` (default: about
        check_route_timeout from now). Errors that are not about reaching
        the store (bad credentials, refused permissions) are raised at once.
        Each attempt sees the deadline in :data:`store_call_deadline`.
        """
        if deadline is None:
            deadline = self._kv_deadline()
        started = time.monotonic()
        delay = 0.05
        attempts = 0
        last: BaseException | None = None
        while True:
            attempts += 1
            attempt_started = time.monotonic()
            token = store_call_deadline.set(deadline)
            try:
                # an attempt on a store that stopped answering mid-call must
                # not outlive the deadline either
                return await asyncio.wait_for(fn(*args), max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                waited = time.monotonic() - attempt_started
                # an attempt the deadline cut short says less than the error before it
                if last is None or waited >= 1.0:
                    last = TimeoutError(f"no answer within {waited:.1f}s")
            except Exception as e:
                if not self.kv_store.is_unavailable(e):
                    raise
                last = e
            finally:
                store_call_deadline.reset(token)
            # whatever answers next may have lost the Hub's own config
            self._kv_setup_lost = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._kv_unavailable_error(what, attempts, started, last) from None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)

    def _kv_unavailable_error(
        self, what: str, attempts: int, started: float, last: BaseException | None
    ) -> KVStoreUnavailable:
        """The error (logged once here) of a store call that ran out of time."""
        store = self.kv_store
        elapsed = time.monotonic() - started
        detail = self._kv_scrub(store.describe_error(last)).rstrip(". ") if last else "none"
        self.log.error("%s is unreachable (%s failed): %s", store.label, what, detail)
        return KVStoreUnavailable(
            f"{store.label} is unreachable: the {what} failed {attempts} "
            f"time{'s' if attempts > 1 else ''} in {elapsed:.1f}s (last error: {detail}). "
            f"Check that the store is running and that {self._kv_url_trait()} is right; "
            "calls succeed again once it answers."
        )

    def _kv_url_trait(self) -> str:
        """The name of the traitlet holding the store's URL."""
        return f"{self.provider_name}_url"

    def _kv_scrub(self, text: str) -> str:
        for secret in self.kv_store.secrets:
            text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------ store primitives

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        """Set every key to its value in one transaction."""
        if not await self.kv_store.set(to_set) and self._kv_setup_keys:
            self.log.warning(
                "%s lost every key this Hub wrote (restarted without persistence?); "
                "writing the Hub's Traefik config again. Routes come back with the Hub's "
                "next route check (JupyterHub's check_routes).",
                self.kv_store.label,
            )
            self._kv_setup_lost = True

    async def _kv_atomic_delete(self, *keys: str) -> None:
        """Delete keys in one transaction; a key ending in the separator is a subtree."""
        await self.kv_store.delete(list(keys))

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        """Every key starting with ``prefix`` and its value, in one read."""
        return await self.kv_store.get_tree(prefix)

    # ------------------------------------------------------------ helpers for stores
    # jupyterhub-traefik-proxy's, kept for the stores written for it

    def flatten_dict_for_kv(self, data: dict[str, Any], prefix: str = "") -> dict[str, str]:
        """``{"a": {"b": [1, True]}}`` -> ``{"a/b/0": "1", "a/b/1": "true"}``
        (joined by ``kv_separator``, under ``prefix``); a value that is not a
        string, number or boolean is a ValueError."""
        return core.flatten(data, self.kv_separator, prefix)

    def unflatten_dict_from_kv(self, kv_list: Any, root_key: str = "") -> Any:
        """The inverse: ``[(key, value), ...]`` (or a dict) -> nested; keys
        ``0..n-1`` make a list, and list keys with a gap are an IndexError.
        With ``root_key``, only the subtree under it ({} if there is none)."""
        flat = dict(kv_list.items() if isinstance(kv_list, dict) else kv_list)
        tree: Any = core.unflatten(flat, self.kv_separator)
        _check_list_keys(tree)
        for part in root_key.strip(self.kv_separator).split(self.kv_separator) if root_key else ():
            if not isinstance(tree, dict) or part not in tree:
                return {}
            tree = tree[part]
        return tree

    async def _kv_read_tree(self, prefix: str) -> dict[str, str]:
        """:meth:`_kv_get_tree` as ``{full key: value}``, whichever form a
        subclass's returns (see :func:`traefik_proxy.core.as_flat_tree`)."""
        return core.as_flat_tree(await self._kv_get_tree(prefix), prefix, self.kv_separator)


def _check_list_keys(node: Any, path: str = "") -> None:
    """IndexError for a subtree whose keys are all indices but not ``0..n-1``
    (:func:`core.unflatten` leaves it a dict; the older helper refused it)."""
    if isinstance(node, list):
        for i, child in enumerate(node):
            _check_list_keys(child, f"{path}/{i}")
    elif isinstance(node, dict):
        if node and all(k.isascii() and k.isdigit() for k in node):
            raise IndexError(f"list keys {sorted(node, key=int)} under {path or '/'!r} miss earlier items")
        for key, child in node.items():
            _check_list_keys(child, f"{path}/{key}")
