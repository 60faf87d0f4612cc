"""Fast TOML and YAML text for Traefik's dynamic config.

The file provider rewrites the whole file on every batch, so serialization
is on the hot path: with 1,000 routes tomli-w takes ~200 ms and PyYAML's C
dumper ~700 ms; these take a few ms (strings are quoted by the C JSON
encoder). Both emit only the subset of the formats a config needs: dicts,
lists, strings, ints, floats and booleans.

- TOML: one ``[table]`` per dict that has plain values, sub-dicts as further
  tables, lists and empty dicts inline. A JSON string literal is a valid TOML
  basic string except for DEL, which TOML wants escaped.
- YAML: JSON, which YAML 1.2 (and Traefik's YAML parser) reads as YAML, one
  route per line so the file stays readable and diffable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_json_str = json.JSONEncoder(ensure_ascii=False).encode


# characters a JSON encoder leaves raw that TOML (DEL) or YAML (DEL, C1
# controls, BOM, non-characters) want escaped; both read \uXXXX escapes
_TOML_RAW = re.compile("\x7f")
_YAML_RAW = re.compile("[\x7f-\x9f\ufeff\ufffe\uffff]")


def _escape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _string(value: str) -> str:
    return _escape(_TOML_RAW, _json_str(value))


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {value!r} to a config file")
        return repr(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(k))} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r:.50} to a config file")


class Memo:
    """Rendered text of config subtrees, reused while the subtree object lives.

    The file provider's document shares every unchanged subtree between
    versions (see ``apply_changes``), so rendering a new version only
    renders what changed. Entries hold their object, so an id is never
    reused while cached; entries not used by the latest render are dropped.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str], tuple[Any, str]] = {}
        self._used: dict[tuple[int, str], tuple[Any, str]] = {}

    def get(self, obj: Any, where: str) -> str | None:
        entry = self._entries.get((id(obj), where))
        if entry is not None and entry[0] is obj:
            self._used[(id(obj), where)] = entry
            return entry[1]
        return None

    def put(self, obj: Any, where: str, text: str) -> str:
        self._used[(id(obj), where)] = (obj, text)
        return text

    def finish(self) -> None:
        self._entries, self._used = self._used, {}


#: Depth at which subtrees are memoized: ``http.routers.<name>`` is 3.
_MEMO_DEPTH = 3


def to_toml(config: Mapping[str, Any], memo: Memo | None = None) -> str:
    """TOML text whose parse equals ``config``."""
    out: list[str] = []
    _table(out, [], config, memo)
    if memo is not None:
        memo.finish()
    return "".join(out)


def _table(out: list[str], path: list[str], table: Mapping[str, Any], memo: Memo | None) -> None:
    if memo is not None and len(path) == _MEMO_DEPTH:
        where = ".".join(path)
        text = memo.get(table, where)
        if text is None:
            sub: list[str] = []
            _table(sub, path, table, None)
            text = memo.put(table, where, "".join(sub))
        out.append(text)
        return
    plain = [(k, v) for k, v in table.items() if not (isinstance(v, Mapping) and v)]
    if plain:
        if path:
            out.append(f"\n[{'.'.join(path)}]\n")
        for key, value in plain:
            text = memo.get(value, "v") if memo is not None else None
            if text is None:
                text = _inline(value)
                if memo is not None and len(path) >= _MEMO_DEPTH - 1:
                    memo.put(value, "v", text)  # e.g. route records
            out.append(f"{_key(str(key))} = {text}\n")
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            _table(out, path + [_key(str(key))], value, memo)


def to_yaml(config: Mapping[str, Any], memo: Memo | None = None) -> str:
    """YAML (as JSON) text whose parse equals ``config``; one entry per line
    below the second level."""
    out: list[str] = []
    _json_block(out, config, 0, memo)
    out.append("\n")
    if memo is not None:
        memo.finish()
    return "".join(out)


def _json_block(out: list[str], value: Any, depth: int, memo: Memo | None) -> None:
    if depth < _MEMO_DEPTH and isinstance(value, Mapping) and value:
        indent = "  " * (depth + 1)
        out.append("{\n")
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            out.append(f"{indent}{_escape(_YAML_RAW, _json_str(str(key)))}: ")
            _json_block(out, item, depth + 1, memo)
            out.append(",\n" if i < len(items) - 1 else "\n")
        out.append("  " * depth + "}")
        return
    text = memo.get(value, "json") if memo is not None else None
    if text is None:
        _check_json(value)
        text = _escape(_YAML_RAW, json.dumps(value, ensure_ascii=False, allow_nan=False))
        if memo is not None and isinstance(value, (Mapping, list, str)):
            memo.put(value, "json", text)
    out.append(text)


def _check_json(value: Any) -> None:
    # json.dumps would turn tuples into lists and keys into strings silently;
    # refuse what a config should not hold at all
    if isinstance(value, (set, bytes)):
        raise TypeError(f"cannot write {type(value).__name__} to a config file")
