"""TKvProxy: Traefik's dynamic config and the route records in a key-value store.

Traefik's KV providers (etcd, Redis, Consul) read the dynamic config as flat
keys under a root key (``traefik/http/routers/<name>/rule``…). This adapter
turns each batch of changes (:class:`traefik_proxy.core.Changes`) into at most
one delete transaction and one set transaction on three store primitives that
a subclass writes: :meth:`TKvProxy._kv_atomic_set`,
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
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from traitlets import Unicode, validate

from . import core
from .proxy import TraefikProxy

T = TypeVar("T")

#: When the store call running in this context must be over
#: (``time.monotonic()``), or None. Set by :meth:`TKvProxy._kv_call` for each
#: attempt; a store client that cannot be cancelled (a blocking call in a
#: worker thread, which inherits the context) bounds its own calls with it.
store_call_deadline: ContextVar[float | None] = ContextVar("store_call_deadline", default=None)


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


class TKvProxy(TraefikProxy):
    """Base of the proxies whose dynamic config lives in a key-value store.

    Subclasses set ``provider_name``, add their provider to Traefik's static
    config and implement the three ``_kv_*`` primitives.
    """

    #: Most operations the store accepts in one transaction (None: no limit).
    #: Larger changes are split into several transactions, ordered so that
    #: Traefik never sees a router before its service (see ``_set_order``).
    kv_max_txn_ops: int | None = None
    #: Largest request (keys and values, roughly) the store accepts in one
    #: transaction (None: no limit).
    kv_max_txn_bytes: int | None = None

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
        self._kv_write_lock = asyncio.Lock()
        # the Hub's own dynamic config (API router, TLS) as flat keys, and
        # whether the store may have lost it (see _apply_dynamic_config)
        self._kv_setup_keys: dict[str, str] = {}
        self._kv_setup_lost = False

    # ------------------------------------------------------------ keys

    @property
    def _routes_prefix(self) -> str:
        sep = self.kv_separator
        return f"{self.kv_jupyterhub_prefix}{sep}routes{sep}"

    def _record_key(self, name: str) -> str:
        return self._routes_prefix + name

    def _traefik_key(self, path: Iterable[str]) -> str:
        return self.kv_separator.join([self.kv_traefik_prefix, *path])

    def _keys_for(self, changes: core.Changes) -> tuple[dict[str, str], list[str]]:
        """(keys to set, keys to delete) of one change; pure given the traitlets."""
        sep = self.kv_separator
        to_set = core.flatten(changes.merge, sep, self.kv_traefik_prefix) if changes.merge else {}
        for name, record in changes.records.items():
            to_set[self._record_key(name)] = record
        to_delete = [self._record_key(name) for name in changes.drop_records]
        to_delete += [self._traefik_key(path) + sep for path in changes.delete]
        return to_set, to_delete

    def _set_order(self, key: str) -> int:
        # when a change is split into several transactions: services before
        # routers (a router whose service is missing is an error in Traefik),
        # route records last (a record means "this route is written").
        # Deletions: see _delete_order.
        sep = self.kv_separator
        if key.startswith(self._routes_prefix):
            return 3
        if key.startswith(self._traefik_key(("http", "routers")) + sep):
            return 2
        if key.startswith(self._traefik_key(("http", "services")) + sep):
            return 0
        return 1

    def _delete_order(self, key: str) -> int:
        # when a deletion is split: routers before their services, and route
        # records last. A deletion cut short (the store went away) then
        # leaves the record, so the Hub still lists the route and its next
        # check_routes deletes the rest; without the record, routers would
        # stay in Traefik with nothing to tell the Hub they exist.
        order = self._set_order(key)
        return order if order == 3 else 2 - order

    # ------------------------------------------------------------ seams

    async def _setup_traefik_dynamic_config(self) -> None:
        await super()._setup_traefik_dynamic_config()
        # remembered once written: the first write to an empty store is not a loss
        config = self._generate_traefik_dynamic_config()
        sep = self.kv_separator
        self._kv_setup_keys = core.flatten(config, sep, self.kv_traefik_prefix) if config else {}
        self._kv_setup_lost = False

    async def _apply_dynamic_config(self, changes: core.Changes) -> None:
        deadline = self._kv_deadline()
        to_set, to_delete = self._keys_for(changes)
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
                    self.log.info(
                        "Writing the Hub's Traefik config to %s again", self._kv_store_label()
                    )
                    self._kv_setup_lost = False
                    await self._kv_write(dict(self._kv_setup_keys), [], deadline)
            except BaseException:
                if restoring:
                    self._kv_setup_lost = True
                raise

    async def _kv_write(self, to_set: dict[str, str], to_delete: list[str], deadline: float) -> None:
        if to_delete:
            ordered = sorted(to_delete, key=self._delete_order)
            for chunk in self._chunks(ordered):
                await self._kv_call("delete", self._kv_atomic_delete, *chunk, deadline=deadline)
        if to_set:
            ordered = sorted(to_set, key=self._set_order)
            for chunk in self._chunks(ordered, to_set):
                await self._kv_call(
                    "write", self._kv_atomic_set, {k: to_set[k] for k in chunk}, deadline=deadline
                )

    def _chunks(self, keys: list[str], values: dict[str, str] | None = None) -> list[list[str]]:
        """Split keys into transactions within kv_max_txn_ops and kv_max_txn_bytes."""
        max_ops = self.kv_max_txn_ops or len(keys) or 1
        max_bytes = self.kv_max_txn_bytes
        chunks: list[list[str]] = [[]]
        size = 0
        for key in keys:
            cost = len(key.encode()) + (len(values[key].encode()) if values else 0) + 16
            if chunks[-1] and (len(chunks[-1]) >= max_ops or (max_bytes and size + cost > max_bytes)):
                chunks.append([])
                size = 0
            chunks[-1].append(key)
            size += cost
        return chunks

    async def _get_jupyterhub_dynamic_config(self) -> dict[str, str]:
        prefix = self._routes_prefix
        tree = await self._kv_call("read", self._kv_get_tree, prefix)
        return {key[len(prefix) :]: value for key, value in tree.items() if key.startswith(prefix)}

    async def _get_route_record(self, name: str) -> str | None:
        key = self._record_key(name)
        return (await self._kv_call("read", self._kv_get_tree, key)).get(key)

    async def _get_traefik_dynamic_config(self) -> dict[str, Any]:
        """Traefik's dynamic config as stored (nested; for tests and debugging)."""
        prefix = self.kv_traefik_prefix + self.kv_separator
        tree = await self._kv_call("read", self._kv_get_tree, prefix)
        return core.unflatten({k[len(prefix) :]: v for k, v in tree.items()}, self.kv_separator)

    # ------------------------------------------------------------ store availability

    def _kv_deadline(self) -> float:
        """When a store call started now must give up (``time.monotonic()``).

        A little before check_route_timeout, so the caller gets our error
        naming the store rather than the bare timeout of the base class's
        ``asyncio.wait_for`` around ``_apply_dynamic_config``.
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
                if not self._kv_unavailable(e):
                    raise
                last = e
            finally:
                store_call_deadline.reset(token)
            # whatever answers next may have lost the Hub's own config
            self._kv_setup_lost = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
        elapsed = time.monotonic() - started
        detail = self._kv_scrub(self._kv_describe_error(last)).rstrip(". ") if last else "none"
        self.log.error("%s is unreachable (%s failed): %s", self._kv_store_label(), what, detail)
        raise KVStoreUnavailable(
            f"{self._kv_store_label()} is unreachable: the {what} failed {attempts} "
            f"time{'s' if attempts > 1 else ''} in {elapsed:.1f}s (last error: {detail}). "
            f"Check that the store is running and that {self._kv_url_trait()} is right; "
            "calls succeed again once it answers."
        ) from None

    def _kv_unavailable(self, error: BaseException) -> bool:
        """Whether an exception of the store client means "the store did not answer"."""
        return False

    def _kv_describe_error(self, error: BaseException) -> str:
        """A one-line description of a store client's error."""
        return str(error) or type(error).__name__

    def _kv_url_trait(self) -> str:
        """The name of the traitlet holding the store's URL."""
        return f"{self.provider_name}_url"

    def _kv_store_label(self) -> str:
        """E.g. ``etcd at http://127.0.0.1:2379``, without credentials."""
        url = urlsplit(str(getattr(self, self._kv_url_trait(), "")))
        netloc = url.netloc.rpartition("@")[2]
        return f"{self.provider_name} at {url._replace(netloc=netloc).geturl()}"

    def _kv_secrets(self) -> list[str]:
        """Strings that must never appear in an error message or a log line."""
        url = urlsplit(str(getattr(self, self._kv_url_trait(), "")))
        names = (f"{self.provider_name}_password",)
        found = [str(getattr(self, n, "") or "") for n in names]
        if url.password:
            found += [url.password, unquote(url.password)]
        return [s for s in found if s]

    def _kv_scrub(self, text: str) -> str:
        for secret in self._kv_secrets():
            text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------ store primitives

    async def _kv_atomic_set(self, to_set: dict[str, str]) -> None:
        """Set every key to its value in one transaction."""
        raise NotImplementedError

    async def _kv_atomic_delete(self, *keys: str) -> None:
        """Delete keys in one transaction; a key ending in the separator is a subtree."""
        raise NotImplementedError

    async def _kv_get_tree(self, prefix: str) -> dict[str, str]:
        """Every key starting with ``prefix`` and its value, in one read."""
        raise NotImplementedError
