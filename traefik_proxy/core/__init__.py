"""The functional core of traefik-proxy: pure functions, importable anywhere.

Nothing in this package performs I/O, uses asyncio, traitlets or logging, or
imports JupyterHub. Other tools can use it to compute what this proxy would
write, e.g.::

    from traefik_proxy.core import make_route, route_fragment, Settings, flatten
    route = make_route("/user/alice/", "http://10.0.0.5:8888", {"user": "alice"})
    flatten(route_fragment(route, Settings()))
"""

from .activity import active_since, iso_utc, service_request_counts
from .api import Expected, absent_in_rawdata, is_live, live_in_rawdata, router_matches
from .batch import Changes, Op, changes_for, expectations, net_ops
from .config import (
    ALLOWED_ENCODED_CHARACTERS,
    Settings,
    api_fragment,
    error_pages_fragment,
    apply_changes,
    apply_flat_diff,
    deep_merge,
    diff,
    flatten,
    get_path,
    host_port,
    route_fragment,
    route_paths,
    route_record,
    static_config,
    tls_fragment,
    unflatten,
)
from .kv import KeyLayout, TxnLimits, kv_keys, plan_delete, plan_set
from .providers import consul_provider, etcd_provider, redis_provider
from .routespec import (
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

__all__ = [
    "ALLOWED_ENCODED_CHARACTERS",
    "Changes",
    "Expected",
    "KeyLayout",
    "Op",
    "Route",
    "Settings",
    "TxnLimits",
    "absent_in_rawdata",
    "active_since",
    "api_fragment",
    "error_pages_fragment",
    "apply_changes",
    "apply_flat_diff",
    "changes_for",
    "consul_provider",
    "decode_route",
    "deep_merge",
    "diff",
    "encode_route",
    "etcd_provider",
    "expectations",
    "flatten",
    "get_path",
    "host_port",
    "is_live",
    "iso_utc",
    "kv_keys",
    "live_in_rawdata",
    "make_route",
    "net_ops",
    "normalize_host",
    "normalize_routespec",
    "normalize_target",
    "plan_delete",
    "plan_set",
    "redis_provider",
    "route_fragment",
    "route_name",
    "route_paths",
    "route_priority",
    "route_record",
    "router_matches",
    "service_request_counts",
    "split_routespec",
    "static_config",
    "tls_fragment",
    "traefik_rule",
    "unflatten",
    "validate_data",
]
