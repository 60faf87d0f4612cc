"""A configuration reference generated from the traitlets themselves.

The directive imports a class and lists its ``config=True`` traits: name,
type, default and help text, so the reference cannot drift from the code::

    ```{traitlets-reference} traefik_proxy.fileprovider.TraefikFileProviderProxy
    ```

By default only the traits the class adds to its main base are listed: its
last direct base, as mixins come first (``TKvProxy(KvMigration,
TraefikProxy)``: what TKvProxy and KvMigration add to TraefikProxy). A trait
a subclass redefines counts as its own.

Options:

``:all:``
    every config trait of the class, inherited ones included, grouped by the
    class that defines them (a rubric per class).
``:base: dotted.Class``
    leave out the traits the class shares with this base, instead of with
    its last direct base.
``:deprecated:``
    only the deprecated aliases (left out otherwise): traits whose metadata
    names a ``deprecated_for``/``deprecated_in``, or whose help starts with
    "Deprecated".
``:config-name: Name``
    the section name the ``c.<Name>.<trait>`` entries show (default: the
    class's name).
``:allow-empty:``
    emit nothing when no trait is left (otherwise that is an error, so a
    directive that lists nothing is noticed); for the deprecated section,
    where a class gaining an alias must show up without editing the page.

Help texts are reST-ish plain text written for ``--help-all``. They are not
parsed as reST (so they can never make a warning): each blank-line separated
paragraph becomes a paragraph of text, ```x``` and ````x```` become inline
literals, and nothing else is interpreted.

Each entry is a target: ``{ref}`traefik_shards <config:traefikproxy.traefik_shards>``` links to
it (``config:`` + the lower-cased ``Name.trait``).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__version__ = "1.0"

#: ``literal`` or ``literal`` (one or two backticks), never spanning a paragraph
_LITERAL = re.compile(r"``(.+?)``|`([^`]+?)`")


def import_object(dotted: str) -> Any:
    module_name, _, name = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"{dotted!r} is not a dotted path module.Class")
    return getattr(importlib.import_module(module_name), name)


def owner_of(cls: type, name: str) -> type:
    """The class in ``cls``'s MRO whose body defines trait ``name``."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    raise LookupError(name)  # pragma: no cover - class_traits found it somewhere


def is_deprecated(trait: Any) -> bool:
    metadata = trait.metadata
    if "deprecated_for" in metadata or "deprecated_in" in metadata or metadata.get("deprecated"):
        return True
    return (trait.help or "").lstrip().lower().startswith("deprecated")


def trait_type(trait: Any) -> str:
    """The trait's class name, with the values of an enum."""
    name = type(trait).__name__
    values = getattr(trait, "values", None)
    if values is not None and "Enum" in name:
        return f"{name}({', '.join(repr(v) for v in values)})"
    return name


def own_traits(cls: type, bases: list[type]) -> dict[str, Any]:
    """The config traits of ``cls`` that none of ``bases`` has (as the same object)."""
    traits = cls.class_traits(config=True)
    inherited: dict[str, Any] = {}
    for base in bases:
        if hasattr(base, "class_traits"):
            inherited.update(base.class_traits(config=True))
    return {n: t for n, t in traits.items() if inherited.get(n) is not t}


def help_paragraphs(text: str) -> list[nodes.paragraph]:
    """Plain paragraphs of a help text; backticked words as inline literals."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(text or "")):
        block = " ".join(line.strip() for line in block.splitlines()).strip()
        if not block:
            continue
        paragraph = nodes.paragraph()
        position = 0
        for match in _LITERAL.finditer(block):
            if match.start() > position:
                paragraph += nodes.Text(block[position : match.start()])
            code = match.group(1) if match.group(1) is not None else match.group(2)
            paragraph += nodes.literal(code, code)
            position = match.end()
        if position < len(block):
            paragraph += nodes.Text(block[position:])
        paragraphs.append(paragraph)
    return paragraphs


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring, as plain text (roles and backticks dropped)."""
    summary = " ".join((doc or "").split("\n\n")[0].split())
    first = re.split(r"(?<=\.)\s", summary, maxsplit=1)[0]
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", first).replace("``", "")


def qualified(klass: type) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


class TraitletsReference(SphinxDirective):
    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec = {
        "all": directives.flag,
        "base": directives.unchanged_required,
        "deprecated": directives.flag,
        "config-name": directives.unchanged_required,
        "allow-empty": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        dotted = self.arguments[0].strip()
        try:
            cls = import_object(dotted)
            base = import_object(self.options["base"]) if "base" in self.options else None
        except Exception as e:
            raise self.error(f"traitlets-reference: cannot import {e}") from e
        if not hasattr(cls, "class_traits"):
            raise self.error(f"traitlets-reference: {dotted} has no traits")

        # the page is rebuilt when the code that defines the traits changes
        for klass in cls.__mro__:
            try:
                source = inspect.getsourcefile(klass)
            except TypeError:
                continue
            if source:
                self.env.note_dependency(source)

        if "all" in self.options:
            traits = cls.class_traits(config=True)
        else:
            traits = own_traits(cls, [base if base is not None else cls.__bases__[-1]])
        want_deprecated = "deprecated" in self.options
        traits = {n: t for n, t in traits.items() if is_deprecated(t) == want_deprecated}
        if not traits:
            if "allow-empty" in self.options:
                return []
            raise self.error(f"traitlets-reference: {dotted} has no such config traits")

        config_name = self.options.get("config-name", cls.__name__)
        mro = list(cls.__mro__)

        def order(name: str) -> tuple[int, int]:
            owner = owner_of(cls, name)
            return mro.index(owner), list(vars(owner)).index(name)

        names = sorted(traits, key=order)
        groups: list[tuple[type, list[str]]] = []
        for name in names:
            owner = owner_of(cls, name)
            if groups and groups[-1][0] is owner:
                groups[-1][1].append(name)
            else:
                groups.append((owner, [name]))

        result: list[nodes.Node] = []
        for owner, group in groups:
            if len(groups) > 1:
                result.append(self.owner_rubric(owner))
            deflist = nodes.definition_list(classes=["traitlets-reference"])
            for name in group:
                deflist += self.entry(config_name, name, traits[name])
            result.append(deflist)
        return result

    def owner_rubric(self, owner: type) -> nodes.rubric:
        text = f"Defined in {qualified(owner)}"
        rubric = nodes.rubric(text, text)
        summary = first_sentence(inspect.getdoc(owner))
        if "module" in summary:
            # "Mixin of ... (see the module's docstring)": the module says more
            summary = first_sentence(inspect.getdoc(sys.modules.get(owner.__module__)))
        if summary:
            rubric += nodes.Text(f": {summary}")
        return rubric

    def entry(self, config_name: str, name: str, trait: Any) -> nodes.definition_list_item:
        label = f"config:{config_name}.{name}".lower()
        node_id = nodes.make_id(f"config-{config_name}-{name}")
        term = nodes.term(ids=[node_id])
        term += nodes.literal(f"c.{config_name}.{name}", f"c.{config_name}.{name}")
        term += nodes.reference(
            "", "¶", refid=node_id, classes=["headerlink"], reftitle="Link to this setting"
        )
        self.env.get_domain("std").note_hyperlink_target(
            label, self.env.docname, node_id, f"{config_name}.{name}"
        )

        details = nodes.paragraph(classes=["traitlets-reference-details"])
        details += nodes.strong("Type:", "Type:")
        details += nodes.Text(" ")
        details += nodes.literal(trait_type(trait), trait_type(trait))
        details += nodes.Text("   ")
        details += nodes.strong("Default:", "Default:")
        details += nodes.Text(" ")
        default = trait.default_value_repr()
        details += nodes.literal(default, default)
        replacement = trait.metadata.get("deprecated_for")
        if replacement:
            details += nodes.Text("   ")
            details += nodes.strong("Use instead:", "Use instead:")
            details += nodes.Text(" ")
            details += nodes.literal(replacement, replacement)

        definition = nodes.definition()
        definition += details
        paragraphs = help_paragraphs(trait.help)
        if not paragraphs:
            paragraphs = [nodes.paragraph("", "(no help text)")]
        for paragraph in paragraphs:
            definition += paragraph
        return nodes.definition_list_item("", term, definition)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("traitlets-reference", TraitletsReference)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
