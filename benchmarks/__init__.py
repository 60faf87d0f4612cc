"""Benchmarks of traefik-proxy against the proxies JupyterHub operators use instead.

``python -m benchmarks.bench`` is the entry point; each measured system runs in
its own ``python -m benchmarks.worker`` subprocess. Nothing here is imported by
the package itself, and this module imports nothing, so the worker also runs
under the separate upstream venv (which does not have ``traefik_proxy``).
"""
