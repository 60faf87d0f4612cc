"""Benchmarks of traefik-proxy against the proxies JupyterHub operators use instead.

Each benchmark is a module run as ``python -m benchmarks.NAME`` (``make bench
BENCH=NAME``; see README.md): ``bench`` (the control plane, each measured
system in its own ``python -m benchmarks.worker`` process), ``dataplane``,
``churn``, ``kvfloor``, ``reload_profile`` and ``serializers``. What they share
(servers, stores, backends, wrk, names, reporting) is :mod:`benchmarks.harness`.
Nothing here is imported by the package itself, and this module imports
nothing, so the worker also runs under the separate upstream venv (which does
not have ``traefik_proxy``).
"""
