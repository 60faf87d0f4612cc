"""The plumbing every benchmark shares, one concern a module:

- :mod:`.cli`: command lines: parsers, comma lists, ``--trait`` values, SIGTERM;
- :mod:`.procs`: this machine: CPU pinning, busy CPUs, processes' CPU time and
  memory, tools and their versions, machine info;
- :mod:`.traffic`: requests: the backends routes point at (in-process, or
  ``backend.js`` for load), one probe, ``wrk`` runs;
- :mod:`.names`: user names and their routespecs;
- :mod:`.stores`: a fresh etcd / valkey server per measured run, and writing
  into it directly;
- :mod:`.systems`: the measured proxies (ours, upstream, CHP, Traefik's floor),
  configured, started and filled; installing the comparison systems;
- :mod:`.traefik`: Traefik's API and metrics: routers listed, reloads, quiet;
- :mod:`.output`: percentiles, tables, JSON, plots, progress lines.

Import rule: at module level the standard library, :mod:`tests.servers` and
each other only (``python -m benchmarks.worker`` imports the harness in the
upstream venv, which has neither httpx nor ``traefik_proxy``); anything else is
imported where it is used. The harness imports no benchmark module (only the
floor's factories import :mod:`benchmarks.floor`, when called).
"""
