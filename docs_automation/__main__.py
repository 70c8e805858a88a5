"""`python -m docs_automation <command> [options]`: the maintainers' tools.

Each command lives in its own module, which defines `register(subcommands)`: it adds its
subparser and sets `func` (taking the parsed args, returning an exit status). Add a new
command's module to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: tuple[str, ...] = ("examples", "apiref", "diagrams", "staleness", "consolidate")
"""Modules of `docs_automation` that provide a command, in help order."""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m docs_automation", description="The maintainers' docs tools."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"docs_automation.{name}").register(subcommands)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
