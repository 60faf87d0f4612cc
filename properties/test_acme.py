"""Let's Encrypt's decisions (core.acme) and Traefik's log lines (core.logline)."""

from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from traefik_proxy.core import acme
from traefik_proxy.core.logline import parse_log_line

from .strategies import FAST

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
domain_names = (
    st.lists(labels, min_size=2, max_size=4).map(".".join).filter(lambda d: not d.replace(".", "").isdigit())
)
domain_lists = st.lists(domain_names, min_size=1, max_size=4, unique=True)
emails = st.tuples(labels, domain_names).map("@".join)
namespaces = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def acme_settings(draw) -> acme.AcmeSettings:
    challenge = draw(st.sampled_from(acme.CHALLENGES))
    with_http = challenge == "http-01" or draw(st.booleans())
    return acme.AcmeSettings(
        email=draw(emails),
        domains=tuple(draw(domain_lists)),
        challenge=challenge,
        storage="/srv/acme.json",
        entrypoint=draw(st.sampled_from(["https", "web"])),
        http_entrypoint="http" if with_http else "",
        http_address=":80",
        namespace=draw(namespaces),
        provider=draw(st.sampled_from(["file", "etcd", "redis", "consul"])),
        hsts_max_age=draw(st.sampled_from([0, 300, acme.HSTS_DEFAULT_MAX_AGE])),
    )


# ---------------------------------------------------------------- settings


@FAST
@given(emails, domain_lists, st.data())
def test_usable_settings_have_no_problems(email, domains, data):
    host = data.draw(st.sampled_from(["", *domains]))
    problems = acme.settings_problems(
        email=email,
        domains=domains,
        host=host,
        https_port=443,
        server=acme.LETSENCRYPT_STAGING,
        challenge="http-01",
        http_port=80,
        replicas=[],
    )
    assert problems == []
    assert acme.effective_domains(domains, host) == tuple(domains)


@FAST
@given(emails, domain_lists, domain_names)
def test_a_public_host_outside_the_domains_is_named(email, domains, host):
    problems = acme.settings_problems(
        email=email,
        domains=[d for d in domains if d != host],
        host=host,
        https_port=443,
        server=acme.LETSENCRYPT_PRODUCTION,
        challenge="http-01",
        http_port=80,
        replicas=[],
    )
    assert any(f"does not include {host!r}" in p for p in problems)


@FAST
@given(domain_names)
def test_domains_default_to_the_public_host(host):
    assert acme.effective_domains([], host) == (host,)
    assert acme.certificate_host(f"https://{host}/hub/", "http://:443") == host
    assert acme.certificate_host("", f"http://{host}:443") == host
    # an address to listen on is not a name to certify
    assert acme.certificate_host("", "http://127.0.0.1:443") == ""


@FAST
@given(st.lists(st.sampled_from(["https://a:8099", "http://b:8099"]), min_size=1, max_size=2))
def test_replicas_are_refused_with_what_to_do_instead(replicas):
    problems = acme.settings_problems(
        email="a@b.org",
        domains=["hub.example.org"],
        host="",
        https_port=443,
        server=acme.LETSENCRYPT_PRODUCTION,
        challenge="http-01",
        http_port=80,
        replicas=replicas,
    )
    (problem,) = problems
    assert "traefik_replica_api_urls" in problem and "ssl_cert" in problem


def test_problems_name_the_value_and_the_fix():
    problems = acme.settings_problems(
        email="nobody",
        domains=["*.example.org", "10.0.0.1"],
        host="",
        https_port=80,
        server="letsencrypt",
        challenge="http-01",
        http_port=80,
        replicas=[],
    )
    text = "\n".join(problems)
    for fragment in (
        "'nobody'",
        "'*.example.org'",
        "'10.0.0.1'",
        "'letsencrypt'",
        "bind_url = 'https://:443'",
    ):
        assert fragment in text
    assert acme.settings_without_email([]) is None
    assert "traefik_hsts is set" in acme.settings_without_email(["traefik_hsts"])


# ---------------------------------------------------------------- config


@FAST
@given(acme_settings())
def test_static_fragment_redirects_plain_http_and_answers_the_challenge(s):
    config = acme.static_fragment(s)
    resolver = config["certificatesResolvers"][acme.RESOLVER]["acme"]
    assert resolver["email"] == s.email and resolver["storage"] == s.storage
    if s.challenge == "http-01":
        assert resolver["httpChallenge"]["entryPoint"] == s.http_entrypoint
    else:
        assert "tlsChallenge" in resolver
    entrypoints = config.get("entryPoints", {})
    if s.http_entrypoint:
        redirect = entrypoints[s.http_entrypoint]["http"]["redirections"]["entryPoint"]
        assert redirect["to"] == s.entrypoint and redirect["scheme"] == "https"
        assert redirect["permanent"] == bool(s.hsts_max_age)
    else:
        assert set(entrypoints) <= {s.entrypoint}


@FAST
@given(acme_settings())
def test_dynamic_fragment_requests_every_domain_and_serves_no_request(s):
    config = acme.dynamic_fragment(s)
    router = config["http"]["routers"][acme.certificate_router_name(s.namespace)]
    assert router["tls"]["certResolver"] == acme.RESOLVER
    (domain,) = router["tls"]["domains"]
    assert (domain["main"], *domain.get("sans", [])) == s.domains
    assert router["rule"].endswith("&& !PathPrefix(`/`)")  # every path starts with "/"
    assert router["entryPoints"] == [s.entrypoint]


@FAST
@given(acme_settings())
def test_hsts_middleware_is_the_one_the_entrypoint_names(s):
    static = acme.static_fragment(s)
    dynamic = acme.dynamic_fragment(s)
    if not s.hsts_max_age:
        assert "middlewares" not in dynamic["http"]
        return
    (reference,) = static["entryPoints"][s.entrypoint]["http"]["middlewares"]
    name, provider = reference.split("@")
    assert provider == s.provider
    assert dynamic["http"]["middlewares"][name]["headers"]["stsSeconds"] == s.hsts_max_age


# ---------------------------------------------------------------- Traefik's log

reasons = st.text(max_size=80)


@FAST
@given(domain_lists, reasons)
def test_failure_to_obtain_names_each_domain_and_keeps_traefiks_reason(domains, reason):
    record = {
        "level": "error",
        "message": "Unable to obtain ACME certificate for domains",
        "domains": domains,
        "error": reason,
    }
    failure = acme.certificate_failure(record, server="https://ca/dir", challenge="http-01")
    message = failure.message()
    assert all(d in message for d in domains)
    assert message.endswith(f"Traefik's reason: {reason}")


def test_hints_follow_the_acme_error_type():
    def hint(reason, challenge="http-01"):
        record = {
            "message": "Unable to obtain ACME certificate for domains",
            "domains": ["a.org"],
            "error": reason,
        }
        return acme.certificate_failure(record, server="https://ca/dir", challenge=challenge).hint

    assert "could not reach the ACME server https://ca/dir" in hint(
        "cannot get ACME client get directory at 'x'"
    )
    assert "staging" in hint("acme: error: 429 :: urn:ietf:params:acme:error:rateLimited :: too many")
    assert "DNS" in hint("urn:ietf:params:acme:error:dns :: NXDOMAIN")
    assert "port 80" in hint("urn:ietf:params:acme:error:connection :: refused")
    assert "port 443" in hint("urn:ietf:params:acme:error:unauthorized :: x", "tls-alpn-01")
    skipped = {
        "message": "The ACME resolve is skipped from the resolvers list",
        "error": "permissions 644 for /x/acme.json are too open, please use 600",
    }
    assert "chmod 600" in acme.certificate_failure(skipped, server="s", challenge="http-01").message()


@FAST
@given(
    st.dictionaries(st.sampled_from(["message", "error", "providerName", "routerName"]), st.text(max_size=20))
)
def test_other_records_are_not_failures(record):
    if record.get("message") in (
        "Unable to obtain ACME certificate for domains",
        "The ACME resolve is skipped from the resolvers list",
    ):
        return
    assert acme.certificate_failure(record, server="s", challenge="http-01") is None


@FAST
@given(
    st.sampled_from(["debug", "info", "warn", "error", "fatal"]),
    st.text(max_size=40),
    st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(max_size=10), max_size=3),
)
def test_json_lines_keep_their_level_message_and_fields(level, message, fields):
    record = {**fields, "level": level, "time": "2026-01-01T00:00:00Z", "message": message}
    line = parse_log_line(json.dumps(record) + "\n")
    expected = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "error": logging.ERROR,
        "fatal": logging.CRITICAL,
    }[level]
    assert line.level == expected
    assert line.text.startswith(message.strip())
    assert line.fields == record
    for key, value in fields.items():
        if key not in ("level", "time", "message"):
            assert f"{key}={value}" in line.text


@FAST
@given(st.text(max_size=60))
def test_any_other_line_is_kept_as_text(text):
    line = parse_log_line(text, logging.WARNING)
    if not line.fields:
        assert line.level == logging.WARNING
        assert line.text == text.rstrip("\r\n")
