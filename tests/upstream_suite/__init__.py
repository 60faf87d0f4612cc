"""Harness that runs jupyterhub-traefik-proxy 2.1.0's own test suite against our classes (see run.py)."""
