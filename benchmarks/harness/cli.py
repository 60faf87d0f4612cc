"""Command lines: the parser, comma-separated lists, ``--trait`` values, SIGTERM."""

from __future__ import annotations

import argparse
import ast
import json
import signal
from typing import Any


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """``python -m benchmarks.MODULE``'s parser, its help the module's docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m benchmarks.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def items(text: str) -> list[str]:
    """The items of a comma-separated list, in order; "none" means no item."""
    return [x.strip() for x in text.split(",") if x.strip() and x.strip() != "none"]


def sizes(text: str) -> list[int]:
    """Route counts of a comma-separated list, smallest first, each once."""
    return sorted({int(x) for x in items(text)})


def trait_value(text: str) -> Any:
    """A --trait value: JSON (``false``, ``{"a": 1}``), else a Python literal (``False``), else the string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError):
            pass
    return text


def traits(assignments: list[str], system: str | None = None) -> dict[str, Any]:
    """``--trait NAME=VALUE`` options as {name: value}. With ``system``, each is
    ``SYSTEM:NAME=VALUE`` and only those for ``system`` (or ``*``) count."""
    found: dict[str, Any] = {}
    for item in assignments:
        target, assignment = item.partition(":")[::2] if system is not None else ("*", item)
        name, eq, raw = assignment.partition("=")
        if not (target and name.strip() and eq):
            expected = "SYSTEM:NAME=VALUE" if system is not None else "NAME=VALUE"
            raise SystemExit(f"--trait {item!r}: expected {expected}")
        if target in ("*", system):
            found[name.strip()] = trait_value(raw)
    return found


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """SIGTERM (e.g. from ``timeout``) as Ctrl-C: ``asyncio.run`` then cancels
    the run, whose ``finally``s stop every server it started."""
    signal.signal(signal.SIGTERM, _interrupted)
