"""jupyterhub-traefik-proxy 2.1.0's own test suite, unmodified, against our classes.

We are meant to be drop-in for that release, so its tests must pass here. The
harness is tests/upstream_suite/ (run.py says how it works); this test runs
it as a person would, ``python -m tests.upstream_suite.run``, and fails with
the tail of its output unless pytest passed having run at least one test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: the whole upstream run takes a few minutes here; a hang must not take CI's
TIMEOUT = 1800
TAIL_LINES = 400


def test_upstream_suite_passes(tmp_path):
    log = tmp_path / "upstream-suite.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            # warnings off: etcd3's protobuf warnings would fill the tail
            [
                sys.executable,
                "-m",
                "tests.upstream_suite.run",
                "-q",
                "--show-capture=log",
                "-p",
                "no:warnings",
            ],
            cwd=REPO,
            # wide enough that pytest's summary lines keep their error
            env=dict(os.environ, COLUMNS="250"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # its own process group, to interrupt the whole run if it hangs
            start_new_session=True,
        )
        try:
            code = process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            # an interrupt first: pytest tears its fixtures down, stopping the
            # servers (our traefiks run in sessions of their own)
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            code = None
    lines = log.read_text(errors="replace").splitlines()
    # from pytest's short summary (each failing test and its error) on, if any
    summary = [i for i, line in enumerate(lines) if "short test summary info" in line]
    start = summary[-1] if summary else 0
    tail = "\n".join(lines[max(start, len(lines) - TAIL_LINES) :])
    if code is None:
        raise AssertionError(
            f"the upstream suite did not finish within {TIMEOUT}s; its output ended:\n{tail}"
        )
    passed = 0
    for line in reversed(lines):
        # pytest's closing line, e.g. "== 3 failed, 290 passed, 8 deselected in 250.0s =="
        found = re.search(r"(\d+) passed", line)
        if found and re.search(r" in [\d.]+s", line):
            passed = int(found.group(1))
            break
    assert code == 0 and passed > 0, (
        f"the upstream suite exited {code} with {passed} passed; its output ended:\n{tail}"
    )


def test_the_docs_list_every_test_left_out():
    from .upstream_suite.run import PRIVATE_DETAIL_TESTS

    doc = (REPO / "docs" / "upstream-suite.md").read_text()
    listed = set(re.findall(r"^\| `(tests/[^`]+)` \|", doc, re.M))
    assert listed == set(PRIVATE_DETAIL_TESTS)
