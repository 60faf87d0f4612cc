"""Mutation canary: break each claimed behaviour on purpose and see a test fail.

    .venv/bin/python tools/mutate.py                 # every mutation in tools/mutations.toml
    .venv/bin/python tools/mutate.py coalesce-one    # only these (by name)
    .venv/bin/python tools/mutate.py --list

Each mutation replaces one exact snippet of the package (it must occur
exactly once, so a list gone stale after a refactor fails loudly instead of
mutating nothing) in a scratch copy of the repository, then runs only the
tests mapped to it. The mutation is *killed* when pytest reports a failing
test (exit status 1); it *survives* when the tests pass, and it is an
*error* when pytest could not run them (collection error, no tests, ...):
an error says nothing about the tests, so it fails the canary too.

Exits 0 only if every mutation was killed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS = Path(__file__).resolve().parent / "mutations.toml"
#: what a scratch copy needs to run the tests (the venv is shared)
COPIED = ("traefik_proxy", "tests", "properties", "benchmarks", "examples", "pyproject.toml")


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    timeout: float = 300


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # killed, survived, error
    detail: str
    seconds: float


def load(path: Path = MUTATIONS) -> list[Mutation]:
    with open(path, "rb") as f:
        entries = tomllib.load(f)["mutation"]
    mutations = [Mutation(**{**e, "tests": tuple(e["tests"])}) for e in entries]
    names = [m.name for m in mutations]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise SystemExit(f"{path}: mutation names must be unique; repeated: {sorted(duplicated)}")
    return mutations


def scratch_copy(destination: Path) -> None:
    ignore = shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", ".hypothesis", "results", ".venv*", ".chp"
    )
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, destination / name)


def apply(mutation: Mutation, tree: Path) -> None:
    target = tree / mutation.file
    text = target.read_text()
    count = text.count(mutation.find)
    if count != 1:
        raise ValueError(
            f"mutation {mutation.name!r}: the snippet to replace occurs {count} times in "
            f"{mutation.file} (must be exactly once); update tools/mutations.toml"
        )
    target.write_text(text.replace(mutation.find, mutation.replace, 1))


def first_failure(output: str) -> str:
    """The first failing test pytest names in its summary, or its last line."""
    for line in output.splitlines():
        match = re.match(r"(FAILED|ERROR) (\S+)", line)
        if match:
            return match.group(2)
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def kill_leftovers(marker: str) -> None:
    """Kill the processes whose command line names ``marker`` (the scratch
    copy: the servers its tests started keep their files under it)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass  # gone meanwhile, or not ours to read


def run(mutation: Mutation, python: str, keep_log: Path | None) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutate-{mutation.name}-") as scratch:
        tree = Path(scratch)
        scratch_copy(tree)
        try:
            apply(mutation, tree)
        except ValueError as e:
            return Outcome(mutation, "error", str(e), time.monotonic() - started)
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        command += [f"--basetemp={tree / 'pytest-tmp'}", *mutation.tests]
        try:
            result = subprocess.run(
                command,
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=mutation.timeout,
                stdin=subprocess.DEVNULL,
            )
            output, status = result.stdout + result.stderr, result.returncode
        except subprocess.TimeoutExpired as e:
            output = (
                (e.stdout or b"").decode(errors="replace")
                if isinstance(e.stdout, bytes)
                else (e.stdout or "")
            )
            status = None
        finally:
            # a mutation that breaks stopping leaves its traefik (or store) running
            kill_leftovers(str(tree))
    if keep_log is not None:
        keep_log.mkdir(parents=True, exist_ok=True)
        (keep_log / f"{mutation.name}.log").write_text(output)
    seconds = time.monotonic() - started
    if status == 1:
        return Outcome(mutation, "killed", first_failure(output), seconds)
    if status == 0:
        return Outcome(mutation, "survived", "every mapped test passed", seconds)
    if status is None:
        return Outcome(mutation, "error", f"tests did not finish within {mutation.timeout:.0f}s", seconds)
    return Outcome(mutation, "error", f"pytest exit status {status}: {first_failure(output)}", seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--python", default=sys.executable, help="the Python whose pytest runs the tests")
    parser.add_argument("--logs", type=Path, help="keep each mutation's pytest output in this folder")
    args = parser.parse_args(argv)
    mutations = load()
    if args.names:
        unknown = set(args.names) - {m.name for m in mutations}
        if unknown:
            parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
        mutations = [m for m in mutations if m.name in args.names]
    if args.list:
        for m in mutations:
            print(f"{m.name:28} {m.file}: {m.claim}")
        return 0
    outcomes = []
    for m in mutations:
        print(f"[{len(outcomes) + 1}/{len(mutations)}] {m.name}: {m.claim}", flush=True)
        outcome = run(m, args.python, args.logs)
        print(f"    {outcome.verdict.upper()} in {outcome.seconds:.0f}s: {outcome.detail}", flush=True)
        outcomes.append(outcome)
    print()
    print(f"{'mutation':28} {'verdict':9} {'seconds':>7}  killed by / why")
    for o in outcomes:
        print(f"{o.mutation.name:28} {o.verdict:9} {o.seconds:7.0f}  {o.detail}")
    killed = sum(o.verdict == "killed" for o in outcomes)
    print(f"\n{killed} of {len(outcomes)} mutations killed")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
