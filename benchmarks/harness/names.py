"""User names as a Hub has them, and their routespecs.

``realistic`` names (6-10 characters, English-like initials, :func:`user_names`)
are what the benchmarks use by default; the other distributions of
:data:`DISTRIBUTIONS` test the route tree's worst cases. Every generator is
seeded: the same N gives the same names in every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# rough share of English surnames by initial (percent); the rest of a name is uniform
INITIALS = dict(
    zip(
        "smbchwgprldtkjfanoevyizuqx",
        [10, 9, 9, 8, 7, 6, 5, 5, 5, 5, 5, 4, 4, 3, 3, 3, 2, 1.5, 1.5, 1.5, 1, 0.5, 0.5, 0.3, 0.2, 0.1],
    )
)
REST = "abcdefghijklmnopqrstuvwxyz0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: the measured user of ``sequential`` names: shorter than every other name,
#: so the lowest priority of them, and in their bucket of the route tree
LAST_USER = "u0"


def user_names(count: int, seed: int = 12) -> list[str]:
    """Distinct realistic user names, sorted."""
    rng = random.Random(seed)
    letters, weights = zip(*INITIALS.items())
    names: set[str] = set()
    while len(names) < count:
        first = rng.choices(letters, weights)[0]
        names.add(first + "".join(rng.choices(REST, k=rng.randint(5, 9))))
    return sorted(names)


#: name distributions: the name of the i-th of N users (``rng``: seeded)
DISTRIBUTIONS: dict[str, Callable[[int, random.Random], str]] = {
    "random": lambda i, rng: "".join(rng.choices(LETTERS, k=8)),
    "sequential": lambda i, rng: f"u{i:05d}",
    "student": lambda i, rng: f"s2026{rng.randrange(100_000):05d}",
    "prefixed": lambda i, rng: "jupyter-" + "".join(rng.choices(LETTERS, k=6)),
    "ldap": lambda i, rng: "".join(rng.choices(LETTERS, k=2)) + f"{rng.randrange(100_000):05d}",
}
NAMES = ["realistic", *DISTRIBUTIONS]


def names_of(distribution: str, count: int) -> list[str]:
    """``count`` distinct user names of a distribution (one of :data:`NAMES`), in
    the order a Hub adds them (the first ``k`` of ``count`` + 1 are those of ``count``)."""
    rng = random.Random(2026)
    if distribution == "realistic":
        users = user_names(count)
        rng.shuffle(users)
        return users
    found: dict[str, None] = {}
    while len(found) < count:
        found[DISTRIBUTIONS[distribution](len(found), rng)] = None
    return list(found)


def user_routes(size: int, names: str = "realistic") -> tuple[list[str], str]:
    """(N user routespecs, the measured user's name); the measured route sorts last in
    Traefik's order, and in the route tree it is in the bucket holding the most routes.

    ``sequential``: u00001, u00002, ... all share their first two characters, so
    the tree's two levels hold them in one bucket (the tree's worst case).
    ``realistic``: the measured user is the two-character name of the largest
    two-character group.
    """
    if names == "sequential":
        return [f"/user/u{i:05d}/" for i in range(1, size)] + [f"/user/{LAST_USER}/"], LAST_USER
    fillers = user_names(size - 1) if size > 1 else []
    groups: dict[str, int] = {}
    for name in fillers:
        groups[name[:2]] = groups.get(name[:2], 0) + 1
    measured = max(groups, key=lambda g: (groups[g], g)) if groups else "zz"
    return [f"/user/{n}/" for n in fillers] + [f"/user/{measured}/"], measured


def new_users(count: int, taken: set[str], seed: int = 7) -> list[str]:
    """``count`` routespecs of realistic users not in ``taken`` (routespecs)."""
    fresh = [f"/user/{n}/" for n in user_names(len(taken) + count + 100, seed=seed)]
    return [r for r in fresh if r not in taken][:count]
