"""TEST-ONLY shim (tests/upstream_suite): stands in for the package
``jupyterhub_traefik_proxy`` (jupyterhub-traefik-proxy 2.1.0), whose own test
suite imports it. Its modules only re-export this project's classes under
upstream's module names; the real package is never installed. Never put this
directory on a deployment's path.
"""
