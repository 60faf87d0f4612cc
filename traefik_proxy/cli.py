"""``traefik-proxy static-config``: the configs of a traefik you run.

Also ``python -m traefik_proxy static-config``.

With ``should_start = False`` the operator runs traefik. This command loads
their ``jupyterhub_config.py``, builds the proxy class it chooses
(``c.JupyterHub.proxy_class``) with its settings as JupyterHub would, and
prints or writes:

- the static config to start traefik with (entrypoints, API, provider), as
  :meth:`~traefik_proxy.proxy.TraefikProxy.traefik_static_config` gives it;
- with ``--shard K``, the same for shard K's traefik (``traefik_shards``:
  one traefik per shard beside the front's, on ``traefik_shard_port`` + 2K
  and + 2K + 1);
- the dynamic config the proxy writes for its API (router, basic auth, TLS,
  ``extra_dynamic_config``), for operators who provide it themselves
  (``enable_setup_dynamic_config = False``). It holds the bcrypt hash of
  ``traefik_api_password``, so it is left out while no password is set,
  and, written to a file, the default TLS certificate (kept beside it).

Nothing is started and no store is contacted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import __version__, core
from .files import atomic_write, config_format, dump_config


def load_proxy(config_file: str | None):
    """The proxy JupyterHub would build from ``config_file`` (not started)."""
    from jupyterhub.app import JupyterHub

    from .proxy import TraefikProxy

    app = JupyterHub()
    if config_file:
        if not Path(config_file).is_file():
            raise SystemExit(f"error: config file {config_file!r} not found")
        app.load_config_file(config_file)
    app.init_hub()
    cls = app.proxy_class
    if not (isinstance(cls, type) and issubclass(cls, TraefikProxy)):
        raise SystemExit(
            f"error: c.JupyterHub.proxy_class is {getattr(cls, '__name__', cls)!r}, not a "
            "traefik-proxy class; set it to 'traefik_file', 'traefik_etcd', "
            "'traefik_redis' or 'traefik_consul'"
        )
    return cls(
        public_url=app.bind_url,
        parent=app,
        log=app.log,
        hub=app.hub,
        host_routing=bool(app.subdomain_host),
        ssl_cert=app.ssl_cert,
        ssl_key=app.ssl_key,
    )


def api_dynamic_config(proxy, dynamic_output: str | None = None) -> dict[str, Any] | None:
    """The Hub's own dynamic config, or None while there is no password to hash.

    The default certificate's key goes only into a file: written to
    ``dynamic_output``, it is kept beside it (unless
    ``traefik_default_cert_file`` says where); printed, it is left out.
    """
    if not (proxy.traefik_api_password or proxy.traefik_api_hashed_password):
        return None
    if not proxy.traefik_api_hashed_password:
        proxy.should_start = False  # hash the configured password, never a generated one
        proxy._generate_password_if_needed()
    if not dynamic_output:
        proxy.traefik_default_cert = False
    elif not proxy.traefik_default_cert_file:
        kept = Path(dynamic_output).with_name("traefik-default-cert.pem")
        proxy.traefik_default_cert_file = str(kept)
    return proxy._generate_traefik_dynamic_config()


def render(config: dict[str, Any], fmt: str) -> str:
    return core.to_toml(config) if fmt == "toml" else core.to_yaml(config)


def _emit(config: dict[str, Any], path: str | None, fmt: str, title: str) -> str:
    """Write ``config`` to ``path`` (its extension gives the format), or return its text."""
    if path:
        atomic_write(Path(path), dump_config(config, Path(path)))
        print(f"wrote {title} to {path}", file=sys.stderr)
        return ""
    return f"# {title}\n{render(config, fmt)}"


def _check_dynamic_file(proxy, dynamic_output: str | None) -> None:
    # traefik's file provider watches the file itself: missing at start, the
    # provider stays off (nothing routed, not even the API) until a restart
    watched = getattr(proxy, "dynamic_config_file", "")
    if not watched or Path(watched).exists():
        return
    if dynamic_output and Path(dynamic_output).resolve() == Path(watched).resolve():
        return
    print(
        f"note: traefik's file provider must find {watched} when it starts; create it "
        f"first, e.g. with --dynamic-output {watched}",
        file=sys.stderr,
    )


def shard_proxy(proxy, k: int):
    """Shard k's proxy, whose traefik the operator runs beside the front's."""
    if not 0 <= k < proxy.traefik_shards:
        raise ValueError(
            f"--shard {k}: traefik_shards is {proxy.traefik_shards}, so shards are "
            f"0 to {proxy.traefik_shards - 1}; set c.TraefikProxy.traefik_shards"
        )
    if not proxy.traefik_shard_port:
        raise ValueError("--shard needs fixed ports for the shards: set c.TraefikProxy.traefik_shard_port")
    return proxy._make_shard(k)


def static_config_command(args: argparse.Namespace) -> int:
    proxy = load_proxy(args.config)
    if args.shard is not None:
        proxy = shard_proxy(proxy, args.shard)
    fmt = args.format or (config_format(Path(args.output)) if args.output else "toml")
    texts = [_emit(proxy.traefik_static_config(), args.output, fmt, "Traefik's static config")]
    printed_certificate = proxy.traefik_default_cert and not args.dynamic_output
    dynamic = api_dynamic_config(proxy, args.dynamic_output)
    if dynamic is None:
        print(
            "note: no dynamic config shown: it holds the hash of the API password; "
            "set c.TraefikProxy.traefik_api_password to see it",
            file=sys.stderr,
        )
    else:
        title = "the dynamic config of the Hub's API (for enable_setup_dynamic_config = False)"
        texts.append(_emit(dynamic, args.dynamic_output, fmt, title))
        if printed_certificate and not core.names_default_certificate(dynamic):
            print(
                "note: the default TLS certificate (traefik_default_cert) is not printed, "
                "since it holds a private key; write it with --dynamic-output",
                file=sys.stderr,
            )
    _check_dynamic_file(proxy, args.dynamic_output)
    texts = [t for t in texts if t]
    if texts:
        # two YAML documents need a separator; TOML comments need nothing
        sys.stdout.write(("---\n" if fmt == "yaml" else "\n").join(texts))
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="traefik-proxy", description="Tools for traefik-proxy, JupyterHub's proxy on Traefik."
    )
    main_parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = main_parser.add_subparsers(dest="command", required=True)
    static = commands.add_parser(
        "static-config",
        help="print or write the configs of a traefik you run (should_start = False)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    static.add_argument("-f", "--config", help="the jupyterhub_config.py to read")
    static.add_argument("-o", "--output", help="write the static config here (.toml/.yaml/.yml)")
    static.add_argument("--dynamic-output", help="write the API's dynamic config here")
    static.add_argument(
        "--shard",
        type=int,
        metavar="K",
        help="the configs of shard K's traefik (with traefik_shards; 0-based)",
    )
    static.add_argument(
        "--format", choices=["toml", "yaml"], help="format on stdout (default: --output's; toml)"
    )
    static.set_defaults(run=static_config_command)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:  # a setting that cannot work: its message says the fix
        raise SystemExit(f"error: {e}") from None
