"""A small reader of Go CPU profiles (pprof's ``perftools.profiles.Profile``), and
where Traefik's CPU time goes by stack.

Traefik serves its CPU profile at ``/debug/pprof/profile`` as gzipped
protobuf. This module decodes the protobuf wire format by hand (varints and
length-delimited fields are all the profile uses) into :class:`Profile`,
then sums sample values by category (:data:`CATEGORIES`) and by function.
Pure functions: the caller reads the bytes; nothing here does I/O.

The fields read (numbers from pprof's profile.proto)::

    Profile:  sample_type=1 (ValueType), sample=2, location=4, function=5,
              string_table=6, time_nanos=9, duration_nanos=10,
              period_type=11 (ValueType), period=12
    ValueType: type=1, unit=2            (indexes into string_table)
    Sample:   location_id=1, value=2     (packed or not; location_id[0] is the leaf)
    Location: id=1, line=4 (Line)        (line[0] is the innermost inlined function)
    Line:     function_id=1
    Function: id=1, name=2               (index into string_table)
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

# ------------------------------------------------------------------ wire format

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def signed(value: int) -> int:
    """An int64 field's varint read as two's complement (negatives take 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one message: an int for varints and fixed
    widths, the raw bytes for length-delimited fields (strings, messages,
    packed repeated numbers)."""
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = varint(data, pos)
        elif wire == LENGTH:
            size, pos = varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            value, pos = int.from_bytes(data[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, value


def numbers(value: int | bytes) -> list[int]:
    """A repeated integer field's occurrence: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        n, pos = varint(value, pos)
        out.append(n)
    return out


# ------------------------------------------------------------------ profile


@dataclass
class Sample:
    stack: tuple[str, ...]  # function names, leaf first, inlined frames included
    values: list[int]


@dataclass
class Profile:
    sample_types: list[tuple[str, str]] = field(default_factory=list)  # (type, unit)
    samples: list[Sample] = field(default_factory=list)
    period_type: tuple[str, str] = ("", "")
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0

    def value_index(self, kind: str = "cpu") -> int:
        """Which of a sample's values is ``kind`` (Go's CPU profile: samples/count, cpu/nanoseconds)."""
        for i, (name, _) in enumerate(self.sample_types):
            if name == kind:
                return i
        raise KeyError(f"no sample type {kind!r} in {self.sample_types}")

    def total(self, kind: str = "cpu") -> int:
        i = self.value_index(kind)
        return sum(s.values[i] for s in self.samples)


def _value_type(data: bytes, strings: list[str]) -> tuple[str, str]:
    got = dict(fields(data))
    return strings[got.get(1, 0)], strings[got.get(2, 0)]


def parse(data: bytes) -> Profile:
    """The profile in ``data``: gzipped (as Go serves it) or not."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings: list[str] = []
    raw_samples, raw_locations, raw_functions, value_types = [], [], [], []
    profile = Profile()
    period_type = b""
    for number, value in fields(data):
        if number == 1:
            value_types.append(value)
        elif number == 2:
            raw_samples.append(value)
        elif number == 4:
            raw_locations.append(value)
        elif number == 5:
            raw_functions.append(value)
        elif number == 6:
            strings.append(value.decode("utf-8", "replace"))
        elif number == 9:
            profile.time_nanos = signed(value)
        elif number == 10:
            profile.duration_nanos = signed(value)
        elif number == 11:
            period_type = value
        elif number == 12:
            profile.period = signed(value)
    # the string table comes last in Go's encoding: names resolve afterwards
    profile.sample_types = [_value_type(v, strings) for v in value_types]
    if period_type:
        profile.period_type = _value_type(period_type, strings)

    function_names: dict[int, str] = {}
    for raw in raw_functions:
        got = dict(fields(raw))
        function_names[got.get(1, 0)] = strings[got.get(2, 0)]
    frames: dict[int, tuple[str, ...]] = {}
    for raw in raw_locations:
        location_id, names = 0, []
        for number, value in fields(raw):
            if number == 1:
                location_id = value
            elif number == 4:
                function_id = dict(fields(value)).get(1, 0)
                names.append(function_names.get(function_id, "?"))
        frames[location_id] = tuple(names) or ("?",)

    for raw in raw_samples:
        location_ids, values = [], []
        for number, value in fields(raw):
            if number == 1:
                location_ids += numbers(value)
            elif number == 2:
                values += [signed(v) for v in numbers(value)]
        stack = tuple(name for i in location_ids for name in frames.get(i, ("?",)))
        profile.samples.append(Sample(stack, values))
    return profile


# ------------------------------------------------------------------ categories

#: (category, pattern) in priority order: a sample goes to the first category
#: with a pattern matching any frame of its stack (full function names,
#: package path included), else to "other". Written against Traefik 3.7's
#: profiles (``--read`` a saved one to see its names):
#:
#: GC
#:     the collector's own goroutines (mark workers, sweeper, scavenger) and
#:     the work it makes others do: allocation assists, write-barrier flushes.
#:     First, so an assist inside decoding counts as GC.
#: TLS
#:     Traefik's TLS manager (``UpdateConfigs`` runs on every reload, and
#:     builds the default certificate) and the crypto under it.
#: API requests
#:     HTTP requests Traefik serves: here only on its API entrypoint, i.e.
#:     ``add_route``'s polls until the route is live (each checks the basic
#:     auth's password hash) and the profile request itself. Before router
#:     build: serving runs through ``pkg/muxer`` and ``pkg/middlewares`` too.
#: decode
#:     the provider turning the file or the store into a configuration: the
#:     file watch and parse (TOML/YAML, paerser), the KV provider's listing of
#:     its prefix (etcd's gRPC client, go-redis) and ``pkg/config/kv``'s decoding.
#: router build
#:     what Traefik does with a decoded configuration before serving it: the
#:     configuration watcher's merge of providers and model, the runtime
#:     config, then routers, services, middlewares and muxers (rule parsing).
CATEGORIES: list[tuple[str, str]] = [
    (
        "GC",
        r"^runtime\.(gc[A-Z]|bgsweep|bgscavenge|sweepone|markroot|scanobject|scanObject|scanSpan|wbBufFlush"
        r"|\(\*scavengerState\)|\(\*gcWork\)|GC$)|^gcWriteBarrier",
    ),
    ("TLS", r"traefik/v3/pkg/tls[./]|^crypto/(rsa|ecdsa|x509|tls\.X509KeyPair)"),
    ("API requests", r"^net/http\.\(\*(conn|connReader)\)\."),
    (
        "decode",
        r"traefik/paerser/|BurntSushi/toml|yaml|traefik/v3/pkg/(config|provider)/(file|kv)\."
        r"|fsnotify|kvtools/|go\.etcd\.io/etcd|google\.golang\.org/grpc|redis/go-redis",
    ),
    (
        "router build",
        r"traefik/v3/pkg/(server|muxer|middlewares)[./]|traefik/v3/pkg/config/(runtime|dynamic)\."
        r"|^main\.setupServer\.switchRouter",
    ),
]

OTHER = "other"


def compile_rules(rules: list[tuple[str, str]] = CATEGORIES) -> list[tuple[str, re.Pattern]]:
    return [(name, re.compile(pattern)) for name, pattern in rules]


_COMPILED = compile_rules()


def category(stack: tuple[str, ...], rules: list[tuple[str, re.Pattern]] = _COMPILED) -> str:
    """The first category (by priority) with a pattern matching a frame of ``stack``."""
    for name, pattern in rules:
        if any(pattern.search(frame) for frame in stack):
            return name
    return OTHER


def by_category(
    profile: Profile, rules: list[tuple[str, re.Pattern]] = _COMPILED, kind: str = "cpu"
) -> dict[str, int]:
    """Sample values (nanoseconds for ``cpu``) per category, every category present."""
    i = profile.value_index(kind)
    totals = {name: 0 for name, _ in rules} | {OTHER: 0}
    for s in profile.samples:
        totals[category(s.stack, rules)] += s.values[i]
    return totals


def top_functions(profile: Profile, limit: int = 15, kind: str = "cpu") -> list[tuple[str, int, int]]:
    """(function, cumulative, flat) of the ``limit`` functions with the most
    cumulative time: a sample counts once for every function on its stack,
    flat only for its leaf."""
    i = profile.value_index(kind)
    cumulative: Counter[str] = Counter()
    flat: Counter[str] = Counter()
    for s in profile.samples:
        for name in set(s.stack):
            cumulative[name] += s.values[i]
        if s.stack:
            flat[s.stack[0]] += s.values[i]
    return [(name, cum, flat[name]) for name, cum in cumulative.most_common(limit)]
