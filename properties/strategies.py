"""Hypothesis strategies shared by the property tests of the core."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Modest example counts keep the whole directory well under a minute.
# too_slow is suppressed: other suites share the machine and load it heavily.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters the core refuses (after percent-decoding) because they could
# restructure a Traefik rule or break Go's scanner. Everything else is text a
# routespec may legitimately carry.
RULE_METACHARACTERS = "`\"'()|&!\\"

# Text JupyterHub could put in a path segment: any printable unicode, no
# separators, no metacharacters, no percent (encoding is generated apart).
segment_char = st.characters(
    exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp"),
    exclude_characters=RULE_METACHARACTERS + "/%\ufeff",
)
# "{{" is refused too: Traefik's file provider would template it.
raw_segment = st.text(segment_char, min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and "{{" not in s
)


@st.composite
def encoded_segment(draw) -> tuple[str, str]:
    """(as written in a routespec, as Traefik sees it after decoding)."""
    decoded = draw(raw_segment)
    style = draw(st.sampled_from(["plain", "quote", "quote-all"]))
    if style == "plain":
        return decoded, decoded
    if style == "quote":
        return quote(decoded, safe=""), decoded
    return "".join(f"%{b:02X}" for b in decoded.encode()), decoded


hostname_label = st.from_regex(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?\Z")
hostnames = st.lists(hostname_label, min_size=1, max_size=4).map(".".join)
hosts = st.one_of(
    hostnames,
    st.tuples(hostnames, st.integers(1, 65535)).map(lambda t: f"{t[0]}:{t[1]}"),
)


@st.composite
def routespecs(draw, host: str | None | bool = False, min_segments: int = 0):
    """An accepted routespec and its parts: (routespec, host, decoded path).

    ``host=False`` draws a host or none; ``None`` forces none; a string fixes it.
    """
    if host is False:
        host = draw(st.none() | hosts)
    parts = draw(st.lists(encoded_segment(), min_size=min_segments, max_size=5))
    written = "/" + "".join(w + "/" for w, _ in parts)
    decoded = "/" + "".join(d + "/" for _, d in parts)
    if parts and draw(st.booleans()):
        written = written[:-1]  # the trailing slash is optional on input
    return (host or "") + written, host or "", decoded


# Pieces that try to break out of a backtick string or add matchers, raw and
# percent-encoded, plus characters Go's scanner refuses.
# fmt: off
HOSTILE_PIECES = [
    "`", "(", ")", "||", "&&", "!", "'", '"', "\\", ",", " ", "\t", "\r", "\n",
    "%60", "%28", "%29", "%7C%7C", "%7c", "%26%26", "%21", "%22", "%27", "%5C",
    "%2C", "%0D", "%0A", "%00", "\x00", "%", "%2", "%zz", "%25", "%25%36%30",
    "%2F", "%2f", "/", "//", ".", "..", "%2E", "%2E%2E",
    "\ufeff", "%EF%BB%BF", "\u2028", "%E2%80%A8", "\u0085", "%C2%85",
    "\ud800", "\udcff", "%ED%A0%80", "%C0%AF", "%FF", "%C3",
    "` || PathPrefix(`/", "`) || PathPrefix(`/", "`) || Host(`evil.example`) && PathPrefix(`/",
    "%60%29%20%7C%7C%20PathPrefix%28%60%2F", "Host(`x`)", "PathPrefix(`/`)",
    "{{", "%7B%7B", "{", "}}", "{{ .Env }}",
    "user", "é", "名前", "🙂", "a", "b", "host.tld", "host.tld:8000",
]
# fmt: on

hostile_strings = st.one_of(
    st.tuples(
        st.sampled_from(["/", "/user/", "host.tld/", "Host.TLD:8000/user/", ""]),
        st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=3), max_size=8).map("".join),
    ).map("".join),
    st.text(),
    st.tuples(st.sampled_from(["/", "host.tld/", ""]), st.text(max_size=4), st.integers(2040, 2100)).map(
        lambda t: (t[0] + t[1] * (t[2] // max(len(t[1]), 1)))[: t[2]]
    ),
    st.tuples(st.integers(2000, 2100)).map(lambda t: "/" + "a/" * (t[0] // 2)),
)
