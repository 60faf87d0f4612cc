"""Traefik's log lines as records the Hub can log at the matching level.

Traefik writes one JSON object per line when its static config says
``log.format = "json"``; anything else on its stdout/stderr (a Go panic, a
message printed before its logger starts) is kept as plain text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec

#: ``log`` section of Traefik's static config that makes its lines parseable
JSON_LOG_CONFIG = {"log": {"format": "json", "noColor": True}}

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
# fields every line has, or that the Hub's log already says
_NOT_SHOWN = frozenset({"level", "time", "message"})


class LogLine(msgspec.Struct, frozen=True):
    """One line of Traefik's output: a logging level, the text, the JSON fields."""

    level: int
    text: str
    fields: dict[str, Any] = {}


def parse_log_line(line: str, default_level: int = logging.INFO) -> LogLine:
    """A line of Traefik's output as a :class:`LogLine`.

    A JSON line keeps its level and becomes ``message (key=value, ...)``;
    any other line keeps ``default_level`` and its text.
    """
    line = line.rstrip("\r\n")
    try:
        fields = json.loads(line) if line.startswith("{") else None
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return LogLine(default_level, line)
    level = _LEVELS.get(str(fields.get("level", "")).lower(), default_level)
    message = str(fields.get("message", "")).strip()
    extra = ", ".join(f"{key}={_short(value)}" for key, value in fields.items() if key not in _NOT_SHOWN)
    text = f"{message} ({extra})" if extra else message
    return LogLine(level, text, fields)


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
