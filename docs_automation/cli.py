"""The `python -m docs_automation <command> [options]` command line: every tool, one parser.

Each command lives in its own module, which defines `register(subcommands)`: it adds its
subparser and sets `func` (taking the parsed args, returning an exit status). Add a new
command and its module to `COMMANDS`; modules are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, str] = {
    "examples": "docs_automation.examples.cli",
    "apiref": "docs_automation.apiref.cli",
    "diagrams": "docs_automation.apiref.architecture",
    "staleness": "docs_automation.staleness",
    "consolidate": "docs_automation.consolidate.cli",
}
"""Each command, in help order, and the module that registers it."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each registered by its module in `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m docs_automation", description="The maintainers' docs tools."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command; return the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
