"""tools/mutations.toml stays in step with the code it mutates.

Each mutation replaces a snippet that must occur exactly once in its file; a
refactor (or a formatter) that changes the snippet makes `make mutate` report
an error for it. This catches that in the suite, in a second, instead of at
the next mutation run.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import mutate  # noqa: E402

sys.path.remove(str(REPO / "tools"))


def test_every_mutation_finds_its_snippet_exactly_once():
    stale = {}
    for m in mutate.load():
        found = (REPO / m.file).read_text().count(m.find)
        if found != 1:
            stale[m.name] = f"{m.file}: found {found} times"
    assert not stale, stale
