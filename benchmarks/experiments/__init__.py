"""Scratch experiments behind the benchmark reports (Traefik alone, no proxy class)."""
