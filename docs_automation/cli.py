"""The `python -m docs_automation <command> [options]` command line: every tool, one parser.

Each command lives in its own module, which defines `register(subcommands)`: it adds its
subparser and sets `func` (taking the parsed args, returning an exit status). Add a new
command and its module to `COMMANDS`; modules are imported only when the parser is built.

Each command catches its own errors; `main` is the last boundary, where a `ToolError` that
got past a command still becomes one message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import ToolError

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
    """Parse the command line and run one command; return the exit status.

    Args:
        argv: the arguments after the program name, e.g. `["apiref", "--check"]`; None
            reads `sys.argv[1:]`.

    Returns:
        The command's exit status: 0 done, 1 the check or run it made failed (stale files,
        failed blocks, a refused verification), 2 it could not run (bad input, a failing
        tool); pass it to `sys.exit`.

    Raises:
        SystemExit: the arguments do not parse, or `--help` was given (argparse prints the
            usage first).
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except ToolError as exc:  # the last boundary: one message, never a traceback
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 2
    return status
