"""The harness's command line: `python -m docs_automation examples`, every block, no pytest.

`python -m docs_automation examples [--list] [--page PAGE]` starts a reference server,
proves each block with the `Harness`, and prints the same tally as the docs tests. A block
that fails prints `FAIL`, its id and the reason, and the run goes on.

Exit status: 0 every block passed, 1 some failed, 2 the run could not start (the reference
server did not come up, or the docs could not be read): one message says why, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import processes
from ..errors import ToolError
from .fences import classify, format_tally, tally
from .harness import READY_TIMEOUT_SECONDS, ROOT, Harness, docs_fences

__all__ = ["register"]

_ID_WIDTH = 48  # the longest block id (`page.md:line`) in the docs, padded for a column
_LANG_WIDTH = 10  # the longest fence language (`prometheus`)


def register(subcommands: Any) -> None:
    """Add `examples` to the `python -m docs_automation` command line."""
    parser = subcommands.add_parser(
        "examples",
        help="run every docs example against a reference server it starts",
        description="Run or validate every fenced block under docs/ and print the tally.",
    )
    parser.add_argument("--list", action="store_true", help="only list blocks and their kind")
    parser.add_argument("--page", help="only this page (path under docs/)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ToolError, OSError) as exc:  # the boundary: one line, exit 2
        # The whole message: a server that did not come up ends it with its log's tail.
        print(f"examples: error: {str(exc).strip() or type(exc).__name__}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    fences = [f for f in docs_fences() if not args.page or f.page == args.page]
    if args.list:
        for fence in fences:
            lang = fence.lang or "(none)"
            print(f"{fence.id:<{_ID_WIDTH}} {lang:<{_LANG_WIDTH}} {classify(fence)}")
        print(format_tally(tally(fences)))
        return 0
    port = processes.free_port()
    server = processes.start_reference_server(port, cwd=ROOT, timeout=READY_TIMEOUT_SECONDS)
    harness = Harness(port)
    failed = 0
    try:
        for fence in fences:
            try:
                print(f"ok    {fence.id}: {harness.check(fence)}", flush=True)
            except (ToolError, OSError) as exc:  # one block's failure; the run goes on
                failed += 1
                print(f"FAIL  {fence.id}: {exc}", flush=True)
    finally:
        harness.close()
        processes.stop(server)
    print(format_tally(tally(fences)))
    if harness.newcomer_seconds is not None:
        print(f"newcomer run: {harness.newcomer_seconds:.1f} s")
    print(f"{len(fences) - failed} passed, {failed} failed")
    return 1 if failed else 0
