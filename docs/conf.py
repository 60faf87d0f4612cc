"""Sphinx configuration of traefik-proxy's documentation site.

Built by ``make docs`` (``sphinx-build -W --keep-going -n``: any warning,
an unresolved cross-reference included, fails the build) into
``docs/_build/html``, and by Read the Docs from ``.readthedocs.yaml``.

The build needs no network: no intersphinx inventories are configured, so
references to other projects' objects (httpx, asyncio, traitlets,
JupyterHub, msgspec...) are listed in ``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the package itself (an editable install has it on the path already; a
# plain checkout does not) and the local extensions in docs/_ext/
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import traefik_proxy  # noqa: E402

# -- project -----------------------------------------------------------------

project = "traefik-proxy"
author = "traefik-proxy contributors"
copyright = "traefik-proxy contributors"
release = traefik_proxy.__version__
version = release

# -- general -----------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "traitlets_reference",
    "cli_help",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# howto/_*.md are pieces included into several pages, not pages themselves
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "howto/_*.md"]
templates_path: list[str] = []
html_static_path: list[str] = []

# any warning fails `make docs`; unresolved references too (-n)
nitpicky = True

# -- MyST ----------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
# GitHub-style anchors for headings down to ####, so links such as
# spawn-storm.md#measured-built (written for GitHub) resolve here too
myst_heading_anchors = 4

# -- autodoc -------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# References the build cannot resolve because they name other projects'
# objects (there is no network at build time, so no intersphinx): matched by
# (role type, target) regular expressions.
_OTHER_PROJECTS = "httpx|traitlets|jupyterhub|msgspec|tornado|etcd3|redis|consul|yaml|tomli_w|cryptography"
_STDLIB = "asyncio|collections|typing|datetime|pathlib|re|enum|argparse|logging|ssl|subprocess|os"
nitpick_ignore_regex = [
    (r"py:.*", rf"_?({_OTHER_PROJECTS}|{_STDLIB})(\..*)?"),
    # traitlets' own alias of typing (``import typing as t``), in the
    # signature every HasTraits class inherits: ``(**kwargs: t.Any)``
    (r"py:class", r"t\.Any"),
]
# In this project's docstrings, names of things that are not documented
# (narrowly, by role and exact target; see the report in the docs' commit):
nitpick_ignore = [
    # RouteTable's docstring refers to its instance attribute bucket_size,
    # which has no doc comment, so autodoc has no entry to link to
    ("py:attr", "bucket_size"),
    # TKvProxy.kv_store's docstring names the private TKvProxy._close
    ("py:meth", "_close"),
]

# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"traefik-proxy {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_context = {"default_mode": "auto"}


# -- napoleon and attribute docstrings -------------------------------------------
#
# napoleon reads the first line of an attribute's docstring as "type:
# description" when it holds a colon. This code's docstrings are reST, not
# Google style: a field comment such as "#: a host bucket's domain, after the
# first label: ..." is prose, and napoleon would turn its first half into an
# unresolvable type reference. So napoleon sees the docstrings of modules,
# classes, functions and methods, and leaves attributes, data and properties
# as written.


def _napoleon_skips_attributes(app) -> None:
    from sphinx.ext.napoleon import _process_docstring

    event = "autodoc-process-docstring"
    for listener in list(app.events.listeners.get(event, [])):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)

    def process_docstring(app, what, name, obj, options, lines) -> None:
        if what not in ("attribute", "data", "property"):
            _process_docstring(app, what, name, obj, options, lines)

    app.connect(event, process_docstring)


# -- msgspec Structs' signatures ----------------------------------------------------
#
# msgspec gives a field whose default comes from a factory the default
# "<factory>", which is not Python: Sphinx then cannot parse the signature
# and splits it at every comma (``dict[str`` / ``Any]``), making unresolvable
# references of the pieces. Shown as "..." (some default) instead.


def _factory_defaults(app, what, name, obj, options, signature, return_annotation):
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


# -- the core's names, documented once under traefik_proxy.core --------------------
#
# The API page documents every public name of the core where users import it
# from, traefik_proxy.core (its __all__). The core's own docstrings refer to
# them from inside their submodules (:func:`plan_set_steps` in
# traefik_proxy.core.kv, :mod:`..kv` in traefik_proxy.core.routing), which
# Python's domain looks up as traefik_proxy.core.kv.plan_set_steps and finds
# nothing. An unresolved reference made inside the core (or naming a core
# submodule's object) is looked up again as traefik_proxy.core.<name>, or, for
# a module, traefik_proxy.core.<module>; anything else stays unresolved.


def _core_names() -> set[str]:
    import traefik_proxy.core

    return set(traefik_proxy.core.__all__)


def _resolve_core_name(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    context = node.get("py:module") or ""
    if not (context.startswith("traefik_proxy.core") or target.startswith("traefik_proxy.core.")):
        return None
    bare = target.lstrip(".~")
    last = bare.rsplit(".", 1)[-1]
    candidates = []
    if node.get("reftype") == "mod":
        candidates.append(f"traefik_proxy.core.{last}")
    elif last in _core_names():
        candidates.append(f"traefik_proxy.core.{last}")
    elif node.get("reftype") in ("attr", "meth") and node.get("py:class"):
        # an attribute of the class whose docstring names it
        candidates.append(f"traefik_proxy.core.{node['py:class']}.{last}")
    domain = env.get_domain("py")
    for candidate in candidates:
        resolved = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
        )
        if resolved is not None:
            return resolved
    return None


def _skip_traits(app, what, name, obj, skip, options):
    """Settings are documented by the configuration reference, not as attributes."""
    import traitlets

    if isinstance(obj, traitlets.TraitType):
        return True
    return None


def setup(app) -> None:
    app.connect("autodoc-skip-member", _skip_traits)
    _napoleon_skips_attributes(app)
    app.connect("autodoc-process-signature", _factory_defaults)
    app.connect("missing-reference", _resolve_core_name)
