"""The command-line page (`docs/reference/cli.md`), from both programs' argparse parsers.

`python -m reference_server` and `python -m docs_automation`, each option with its meaning
and choices, read from the parsers the programs really use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reference_server.__main__ import build_parser

from ..cli import build_parser as build_docs_parser
from .generator import Rendered
from .markdown import banner, code, table

__all__ = ["PAGE", "cli", "render"]

PAGE = "docs/reference/cli.md"
"""The command-line page, relative to the repository root."""


def _parser_section(title: str, parser: argparse.ArgumentParser, level: str) -> str:
    rows = []
    subsections = []
    for action in parser._actions:  # argparse has no public listing of its arguments
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subsections.append(_parser_section(f"{parser.prog} {name}", sub, level + "#"))
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(code(o) for o in action.option_strings) or code(action.dest)
        choices = ", ".join(code(c) for c in action.choices) if action.choices else ""
        rows.append((names, action.help or "", choices))
    out = f"{level} `{title}`\n\n{parser.description or ''}\n\n"
    # One line of inline code: argparse wraps usage to the terminal's width, a page should not.
    out += f"Usage: {code(' '.join(parser.format_usage().split()[1:]))}\n"
    if rows:
        out += "\n" + table(("Option", "Meaning", "Choices"), rows)
    if parser.epilog:
        out += f"\n{parser.epilog}\n"
    return out + "\n" + "".join(subsections)


def cli() -> str:
    """The command-line page: both programs' options, from their argparse parsers."""
    return (
        banner("apiref", "the argparse parsers of reference_server and docs_automation")
        + "\n# Command line\n\n"
        + _parser_section("python -m reference_server", build_parser(), "##")
        + _parser_section("python -m docs_automation", build_docs_parser(), "##")
    ).rstrip() + "\n"


def render(root: Path) -> Rendered:
    """The command-line page (`root` is unused: the page comes from the imported code)."""
    return {PAGE: cli()}
