"""The ``--help`` of a command-line tool, generated from its argparse parser.

    ```{cli-help} traefik_proxy.cli.parser
    :subcommand: static-config
    ```

The argument names a function returning an ``argparse.ArgumentParser``; the
directive emits its help (or a subcommand's) as a literal block, 80 columns
wide, so the page shows what the installed command prints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from traitlets_reference import import_object


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    raise LookupError(f"{parser.prog} has no subcommand {name!r}")


class CliHelp(SphinxDirective):
    required_arguments = 1
    has_content = False
    option_spec = {"subcommand": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        try:
            make_parser = import_object(self.arguments[0].strip())
            parser = make_parser()
            if "subcommand" in self.options:
                parser = subparser(parser, self.options["subcommand"])
        except Exception as e:
            raise self.error(f"cli-help: {e}") from e
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "80"
        try:
            text = parser.format_help()
        finally:
            if saved is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = saved
        block = nodes.literal_block(text, text, language="text")
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-help", CliHelp)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
