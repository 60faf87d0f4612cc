"""The interface every key-value store implements for :class:`traefik_proxy.kv.TKvProxy`.

A store only moves keys: it knows nothing of routes, retries or deadlines
beyond :data:`store_call_deadline`. What to write, in which order and in
which transactions is decided by :mod:`traefik_proxy.core.kv`; retrying a
store that does not answer is :meth:`TKvProxy._kv_call`'s job.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from contextvars import ContextVar
from urllib.parse import unquote, urlsplit

from ..core.kv import TxnLimits

#: When the store call running in this context must be over
#: (``time.monotonic()``), or None. Set by ``TKvProxy._kv_call`` for each
#: attempt; a store client that cannot be cancelled (a blocking call in a
#: worker thread, which inherits the context) bounds its own calls with it.
store_call_deadline: ContextVar[float | None] = ContextVar("store_call_deadline", default=None)


class KVStore(abc.ABC):
    """One key-value store: atomic writes and subtree reads of string keys.

    ``separator`` ends a key that stands for a subtree in :meth:`delete`.
    """

    #: What the store accepts in one transaction.
    limits: TxnLimits = TxnLimits()

    def __init__(self, *, label: str, separator: str = "/", secrets: tuple[str, ...] = ()):
        #: E.g. ``etcd at http://127.0.0.1:2379``: for messages, so no credentials.
        self.label = label
        self.separator = separator
        #: Strings that must never appear in an error message or a log line;
        #: longest first, so one that contains another is hidden whole.
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    @abc.abstractmethod
    async def set(self, values: Mapping[str, str]) -> bool:
        """Set every key to its value in one transaction.

        Returns whether the store still had the data this Hub wrote before
        (False when it came back empty, or on the very first write). A store
        that cannot tell returns True.
        """

    @abc.abstractmethod
    async def delete(self, keys: list[str]) -> None:
        """Delete keys in one transaction; a key ending in the separator is a subtree.

        Deleting what is not there is not an error.
        """

    @abc.abstractmethod
    async def get_tree(self, prefix: str) -> dict[str, str]:
        """Every key starting with ``prefix`` (a plain string prefix) and its value."""

    async def get_tree_of_anyone(self, prefix: str) -> dict[str, str]:
        """Like :meth:`get_tree`, but also the keys other programs wrote (for the
        takeover of jupyterhub-traefik-proxy's keys at start). Only a store
        that tracks its own keys needs more than :meth:`get_tree`."""
        return await self.get_tree(prefix)

    @abc.abstractmethod
    def is_unavailable(self, error: BaseException) -> bool:
        """Whether an error of this store's client means "the store did not answer"
        (retry later), as opposed to an answer such as "permission denied"."""

    def describe_error(self, error: BaseException) -> str:
        """A one-line description of an error of this store's client."""
        return str(error) or type(error).__name__

    async def close(self) -> None:  # noqa: B027 (optional: a store without connections keeps it)
        """Release connections; the next call connects again."""


def url_label(kind: str, *urls: str) -> str:
    """``<kind> at <url>[,<url>...]`` without the URLs' credentials."""
    parts = [urlsplit(url) for url in urls]
    bare = [p._replace(netloc=p.netloc.rpartition("@")[2]).geturl() for p in parts]
    return f"{kind} at {','.join(bare)}"


def url_secrets(url: str, *passwords: str) -> tuple[str, ...]:
    """The passwords, and the URL's password as written and decoded."""
    password = urlsplit(url).password
    found = [*passwords, *((password, unquote(password)) if password else ())]
    return tuple(s for s in found if s)
