"""``traefik_proxy.core.__all__`` is sorted, resolvable and complete.

Complete means: the public names the core's submodules define (read from
their source, so names they merely import do not count) are exactly the
exported names, less the exclusions below. A new public function in any core
module, including ones added later, fails this test until it is exported or
made private.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import traefik_proxy.core as core

# Public names defined in core submodules that are deliberately not exported,
# each with the reason. Empty today: every public name is part of the library.
NOT_EXPORTED: dict[str, str] = {}

# Core submodules used by their own name (``core.acme.static_fragment``):
# their names only make sense beside the module's, so they are exported as
# the module (``core.acme``), not one by one. Each with the reason.
NAMESPACES: dict[str, str] = {
    "acme": "Let's Encrypt fragments and checks: static_fragment, dynamic_fragment … read as acme.*",
    "logline": "one line of Traefik's JSON log, for the log forwarder",
}


def _defined_public_names(source: str) -> set[str]:
    """Names a module's top level defines (def, class, assignment), without a leading _."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def _submodule_names() -> dict[str, str]:
    """{public name: submodule defining it} over every module of the core package."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(core.__path__):
        if info.name.startswith("_") or info.name in NAMESPACES:
            continue
        source = (Path(core.__path__[0]) / f"{info.name}.py").read_text()
        for name in _defined_public_names(source):
            assert name not in found, f"{name} is defined in both {found[name]} and {info.name}"
            found[name] = info.name
    return found


def _isort_key(name: str) -> tuple[int, str]:
    # constants, then classes and aliases, then functions (isort's and ruff's order)
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_is_sorted():
    assert core.__all__ == sorted(core.__all__, key=_isort_key)


def test_all_has_no_duplicates_or_private_names():
    assert len(set(core.__all__)) == len(core.__all__)
    assert not [name for name in core.__all__ if name.startswith("_")]


def test_every_exported_name_exists():
    missing = [name for name in core.__all__ if not hasattr(core, name)]
    assert not missing


def test_exported_names_are_the_public_names_of_the_submodules():
    defined = _submodule_names()
    expected = set(defined) - set(NOT_EXPORTED)
    exported = set(core.__all__)
    assert not expected - exported, "defined publicly but not exported (or listed in NOT_EXPORTED)"
    assert not exported - set(defined) - set(NAMESPACES), "exported but defined in no core submodule"
    assert not set(NOT_EXPORTED) - set(defined), "NOT_EXPORTED lists a name nothing defines"


def test_namespaced_modules_are_exported_as_modules():
    import importlib

    for name in NAMESPACES:
        module = importlib.import_module(f"traefik_proxy.core.{name}")
        assert name in core.__all__ and getattr(core, name) is module


def test_exported_objects_are_the_submodules_own():
    """``core.X`` is the object its submodule defines, not a same-named stand-in."""
    defined = _submodule_names()
    for name in set(core.__all__) - set(NAMESPACES):
        module = getattr(core, defined[name])
        assert getattr(core, name) is getattr(module, name), name


def test_package_is_marked_typed():
    import traefik_proxy

    assert (Path(traefik_proxy.__file__).parent / "py.typed").is_file()
