"""The key-value stores TKvProxy writes to, behind one small interface.

- :mod:`.base`: :class:`KVStore`, the interface (atomic set and delete,
  subtree reads, transaction limits, outage detection, a safe label).
- :mod:`.etcd`: etcd v3 over gRPC (the blocking ``etcd3`` client in threads).
- :mod:`.redis`: Redis or Valkey (``redis.asyncio``, a sorted-set key index).
- :mod:`.consul`: Consul's KV over its HTTP API (``/v1/txn``).

Each implementation imports its client library only when used.
"""

from .base import KVStore, store_call_deadline, url_label, url_secrets

__all__ = ["KVStore", "store_call_deadline", "url_label", "url_secrets"]
