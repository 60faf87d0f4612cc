"""Traefik's stdout and stderr, forwarded line by line into the Hub's log.

Some of what an operator must know is only ever said in Traefik's log (why a
certificate could not be obtained, above all). Reading traefik's output puts
it in the Hub's log at the matching level, and lets an ``explain`` callback
turn a record it recognises into one more line that says what to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .core.logline import parse_log_line

#: Given a JSON record of Traefik's log: a line to add to the Hub's log, or None.
Explain = Callable[[Mapping[str, Any]], "str | None"]


class TraefikLogForwarder:
    """Copies the output of each traefik process it watches into ``log``."""

    def __init__(self, log: logging.Logger, explain: Explain | None = None):
        self.log = log
        self.explain = explain
        self._tasks: set[asyncio.Task] = set()

    def watch(self, process: asyncio.subprocess.Process) -> None:
        """Forward the process's piped stdout and stderr until they close."""
        for stream, level in ((process.stdout, logging.INFO), (process.stderr, logging.WARNING)):
            if stream is not None:
                task = asyncio.create_task(self._forward(stream, level))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (waits on several tasks)
        """Wait for the last lines of exited processes; give up after ``timeout``."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()

    async def _forward(self, stream: asyncio.StreamReader, default_level: int) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than the stream's limit: asyncio dropped it
                self.log.warning("traefik: (a log line too long to read was skipped)")
                continue
            if not raw:
                return
            line = parse_log_line(raw.decode(errors="replace"), default_level)
            if line.text:
                self.log.log(line.level, "traefik: %s", line.text)
            if line.fields and self.explain is not None:
                self._explain(self.explain, line.fields)

    def _explain(self, explain: Explain, fields: Mapping[str, Any]) -> None:
        # a failing explanation must not stop the reading: traefik would
        # block once the pipe is full
        try:
            explanation = explain(fields)
        except Exception:
            self.log.exception("Could not interpret traefik's log record %r", fields)
            return
        if explanation:
            self.log.error("%s", explanation)
