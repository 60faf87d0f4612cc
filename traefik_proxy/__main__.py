"""``python -m traefik_proxy``: the ``traefik-proxy`` command (see :mod:`traefik_proxy.cli`)."""

import sys

from .cli import main

sys.exit(main())
