"""The functional core of traefik-proxy: pure functions, importable anywhere.

Nothing in this package performs I/O, uses asyncio, traitlets or logging, or
imports JupyterHub. Other tools can use it to compute what this proxy would
write, e.g.::

    from traefik_proxy.core import make_route, route_fragment, Settings, flatten
    route = make_route("/user/alice/", "http://10.0.0.5:8888", {"user": "alice"})
    flatten(route_fragment(route, Settings()))

Bad routespecs, targets and route data raise :class:`InvalidRoute` (a
ValueError). ``__all__`` lists every public name of the submodules
(properties/test_exported_members.py checks it).
"""

from . import acme, logline
from .activity import active_since, iso_utc, service_request_counts
from .api import Expected, is_live, live_in_rawdata, router_matches
from .batch import Changes, Op, changes_for, expectations, net_ops
from .config import (
    ALLOWED_ENCODED_CHARACTERS,
    KeyPath,
    Nested,
    Settings,
    api_fragment,
    apply_changes,
    deep_merge,
    error_pages_fragment,
    flatten,
    host_port,
    normalize_url,
    route_fragment,
    route_paths,
    route_record,
    static_config,
    tls_fragment,
    unflatten,
)
from .foreign import ForeignRouter, foreign_routers, foreign_routers_warning, is_hub_router
from .migration import (
    LEGACY_API_MIDDLEWARE,
    LEGACY_API_ROUTER,
    InvalidRecord,
    Migration,
    kv_migration_probe,
    kv_migration_reads,
    legacy_alias,
    legacy_routespec,
    legacy_rule,
    plan_file_migration,
    plan_kv_migration,
)
from .kv import OP_OVERHEAD, KeyLayout, TxnLimits, key_role, kv_keys, plan_delete, plan_set, txn_bytes
from .providers import (
    DEFAULT_PORTS,
    consul_provider,
    etcd_provider,
    redis_db,
    redis_provider,
    sentinel_address,
    split_endpoints,
    store_endpoint,
)
from .routespec import (
    MAX_DATA_BYTES,
    MAX_ROUTESPEC_LENGTH,
    MAX_TARGET_LENGTH,
    InvalidRoute,
    Route,
    decode_route,
    encode_route,
    make_route,
    normalize_host,
    normalize_routespec,
    normalize_target,
    route_name,
    route_priority,
    split_routespec,
    traefik_rule,
    validate_data,
)
from .serialize import Memo, to_toml, to_yaml

__all__ = [
    "ALLOWED_ENCODED_CHARACTERS",
    "DEFAULT_PORTS",
    "LEGACY_API_MIDDLEWARE",
    "LEGACY_API_ROUTER",
    "MAX_DATA_BYTES",
    "MAX_ROUTESPEC_LENGTH",
    "MAX_TARGET_LENGTH",
    "OP_OVERHEAD",
    "Changes",
    "Expected",
    "ForeignRouter",
    "InvalidRecord",
    "InvalidRoute",
    "KeyLayout",
    "KeyPath",
    "Memo",
    "Migration",
    "Nested",
    "Op",
    "Route",
    "Settings",
    "TxnLimits",
    "acme",
    "active_since",
    "api_fragment",
    "apply_changes",
    "changes_for",
    "consul_provider",
    "decode_route",
    "deep_merge",
    "encode_route",
    "error_pages_fragment",
    "etcd_provider",
    "expectations",
    "flatten",
    "foreign_routers",
    "foreign_routers_warning",
    "host_port",
    "is_hub_router",
    "is_live",
    "iso_utc",
    "key_role",
    "kv_keys",
    "kv_migration_probe",
    "kv_migration_reads",
    "legacy_alias",
    "legacy_routespec",
    "legacy_rule",
    "live_in_rawdata",
    "logline",
    "make_route",
    "net_ops",
    "normalize_host",
    "normalize_routespec",
    "normalize_target",
    "normalize_url",
    "plan_delete",
    "plan_file_migration",
    "plan_kv_migration",
    "plan_set",
    "redis_db",
    "redis_provider",
    "route_fragment",
    "route_name",
    "route_paths",
    "route_priority",
    "route_record",
    "router_matches",
    "sentinel_address",
    "service_request_counts",
    "split_endpoints",
    "split_routespec",
    "static_config",
    "store_endpoint",
    "tls_fragment",
    "to_toml",
    "to_yaml",
    "traefik_rule",
    "txn_bytes",
    "unflatten",
    "validate_data",
]
