"""core.normalize_url (public_url, traefik_api_url) and the dashboard's API router."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy import core

from .rule_model import matches

hosts = st.sampled_from(["127.0.0.1", "localhost", "hub.example.org", "[::1]", "[fe80::1]"])
ports = st.none() | st.integers(1, 65535)
paths = st.sampled_from(["", "/", "/base/", "/a/b"])


@given(st.sampled_from(["http", "https"]), hosts, ports, paths)
def test_http_urls_get_an_explicit_port_and_nothing_else_changes(scheme, host, port, path):
    url = f"{scheme}://{host}{f':{port}' if port else ''}{path}"
    normalised = core.normalize_url("public_url", url)
    parts, before = urlsplit(normalised), urlsplit(url)
    assert parts.port == (port or {"http": 80, "https": 443}[scheme])
    assert (parts.scheme, parts.hostname, parts.path) == (before.scheme, before.hostname, before.path)
    assert core.normalize_url("public_url", normalised) == normalised  # idempotent


@given(st.sampled_from(["ftp", "ws", "file", "http+unix", "unix"]), hosts, ports)
def test_other_schemes_are_refused_with_the_value_and_the_fix(scheme, host, port):
    url = f"{scheme}://{host}{f':{port}' if port else ''}/"
    with pytest.raises(ValueError) as info:
        core.normalize_url("traefik_api_url", url)
    assert repr(url) in str(info.value) and "set traefik_api_url to http://host:port/" in str(info.value)


def test_the_public_url_may_leave_the_host_out_but_the_api_url_not():
    assert core.normalize_url("public_url", "http://:8000", need_host=False) == "http://:8000"
    with pytest.raises(ValueError, match="no host"):
        core.normalize_url("traefik_api_url", "http://:8099")


API_PATHS = [
    "/api/overview",
    "/api/http/routers",
    "/dashboard/",
    "/dashboard/#/http/routers",
    "/metrics",
    "/",
    "/dashboards",
    "/apix",
]


@pytest.mark.parametrize("dashboard", [False, True])
def test_the_api_router_routes_the_dashboard_only_when_asked(dashboard):
    fragment = core.api_fragment(
        entrypoint="auth_api", username="u", hashed_password="h", dashboard=dashboard
    )
    [router] = fragment["http"]["routers"].values()
    routed = {p for p in API_PATHS if matches(router["rule"], "127.0.0.1", p.split("#")[0])}
    # PathPrefix(`/api`) also takes /apix, as it always has
    expected = {"/api/overview", "/api/http/routers", "/apix"}
    if dashboard:
        expected |= {"/dashboard/", "/dashboard/#/http/routers", "/dashboards"}
    assert routed == expected
    static = core.static_config(
        entrypoint="http",
        public_address=":8000",
        api_entrypoint="auth_api",
        api_address="127.0.0.1:8099",
        tls=False,
        log_level="",
        throttle_duration="0s",
        dashboard=dashboard,
    )
    assert static["api"] == {"dashboard": dashboard}
