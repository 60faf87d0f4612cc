"""TOML and YAML text for Traefik's dynamic config, re-rendering only changed routes.

The file provider rewrites the whole file on every batch, so serialization
is on the hot path. Given a :class:`Memo`, these writers re-render only the
routes that changed since the last render and reuse the text of the others
(``python -m benchmarks.serializers`` measures it; numbers in docs/explanation/benchmarks.md).

- TOML: tomli-w renders each route of a section (``http.routers``,
  ``jupyterhub.routes``...) as a document of its own; the pieces are stitched
  under the section's header. Above the sections there are a few tables only.
- YAML: JSON, which YAML 1.2 (and Traefik's YAML parser) reads as YAML, one
  route per line so the file stays readable and diffable; strings quoted by
  the C JSON encoder. It emits only what a config needs: dicts, lists,
  strings, ints, floats and booleans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import tomli_w

_json_str = json.JSONEncoder(ensure_ascii=False).encode


# characters a JSON encoder leaves raw that YAML wants escaped (DEL, C1
# controls, BOM, non-characters); it reads \uXXXX escapes
_YAML_RAW = re.compile("[\x7f-\x9f\ufeff\ufffe\uffff]")


def _escape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


#: a section's entries: key -> (the value rendered, its text, whether the text
#: is a line under the section's header rather than a table of its own)
_Entries = dict[str, tuple[Any, str, bool]]


class Memo:
    """Rendered text of the entries of each section, reused while an entry's
    value is the same object.

    A section is a table two levels down (``http.routers``,
    ``jupyterhub.routes``): its entries are the routes. The file provider's
    document shares every unchanged route between versions (see
    ``apply_changes``), so a new version re-renders only what changed and the
    rest costs one identity check per entry. Entries hold their value, so an
    id is never reused while cached; entries not used by the latest render
    are dropped.
    """

    def __init__(self) -> None:
        self._old: dict[str, _Entries] = {}
        self._new: dict[str, _Entries] = {}

    def section(self, where: str) -> tuple[_Entries, _Entries]:
        """(entries of the last render, entries of this one) of a section."""
        new: _Entries = {}
        self._new[where] = new
        return self._old.get(where, {}), new

    def finish(self) -> None:
        self._old, self._new = self._new, {}


#: Depth of the tables whose entries are memoized: ``http.routers`` is 2.
_SECTION_DEPTH = 2


def to_toml(config: Mapping[str, Any], memo: Memo | None = None) -> str:
    """TOML text whose parse equals ``config``."""
    out: list[str] = []
    _table_toml(out, [], config, memo)
    if memo is not None:
        memo.finish()
    return "\n".join(out)


def _nest(path: list[str], table: Mapping[str, Any]) -> Mapping[str, Any]:
    """``table`` placed at ``path`` in an otherwise empty document."""
    for key in reversed(path):
        table = {key: table}
    return table


def _table_toml(out: list[str], path: list[str], table: Mapping[str, Any], memo: Memo | None) -> None:
    """Chunks of text for the table at ``path``: its plain values, then each sub-table."""
    if len(path) == _SECTION_DEPTH:
        _section_toml(out, path, table, memo)
        return
    plain = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    # an empty table needs its header, or it would not parse back at all
    if plain or (path and not tables):
        out.append(tomli_w.dumps(_nest(path, plain)))
    for key, value in tables:
        _table_toml(out, path + [key], value, memo)


def _section_toml(out: list[str], path: list[str], table: Mapping[str, Any], memo: Memo | None) -> None:
    """A section's plain values under its header, then its sub-tables; each
    entry rendered alone by tomli-w and its text reused while unchanged."""
    header = tomli_w.dumps(_nest(path, {}))
    # the header is the section's path in TOML syntax, so it names it uniquely
    old, new = memo.section("toml:" + header) if memo is not None else ({}, {})
    lines: list[str] = []
    tables: list[str] = []
    for key, value in table.items():
        entry = old.get(key)
        if entry is None or entry[0] is not value:
            # a plain value comes out under the section's header, a table
            # (or an array of tables) under headers of its own
            text = tomli_w.dumps(_nest(path, {key: value}))
            is_line = text.startswith(header)
            entry = (value, text[len(header) :] if is_line else text, is_line)
        new[key] = entry
        (lines if entry[2] else tables).append(entry[1])
    if lines or not tables:
        out.append(header + "".join(lines))
    out.extend(tables)


def to_yaml(config: Mapping[str, Any], memo: Memo | None = None) -> str:
    """YAML (as JSON) text whose parse equals ``config``; one entry per line
    below the second level."""
    out: list[str] = []
    _json_block(out, config, 0, "", memo)
    out.append("\n")
    if memo is not None:
        memo.finish()
    return "".join(out)


def _json_block(out: list[str], value: Any, depth: int, where: str, memo: Memo | None) -> None:
    if depth <= _SECTION_DEPTH and isinstance(value, Mapping) and value:
        indent = "  " * (depth + 1)
        old, new = memo.section("yaml:" + where) if memo and depth == _SECTION_DEPTH else ({}, None)
        out.append("{\n")
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            entry = old.get(key)
            if entry is None or entry[0] is not item:
                head = f"{indent}{_escape(_YAML_RAW, _json_str(str(key)))}: "
                if depth == _SECTION_DEPTH:
                    entry = (item, head + _json_text(item), True)
                else:
                    sub: list[str] = [head]
                    _json_block(sub, item, depth + 1, f"{where}.{key}", memo)
                    entry = (item, "".join(sub), True)
            if new is not None:
                new[key] = entry
            out.append(entry[1])
            out.append(",\n" if i < len(items) - 1 else "\n")
        out.append("  " * depth + "}")
        return
    out.append(_json_text(value))


def _json_text(value: Any) -> str:
    _check_json(value)
    return _escape(_YAML_RAW, json.dumps(value, ensure_ascii=False, allow_nan=False))


def _check_json(value: Any) -> None:
    # json.dumps would turn tuples into lists and keys into strings silently;
    # refuse what a config should not hold at all
    if isinstance(value, (set, bytes)):
        raise TypeError(f"cannot write {type(value).__name__} to a config file")
