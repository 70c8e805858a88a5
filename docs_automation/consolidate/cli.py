"""The consolidator's command line: `python -m docs_automation consolidate` (plan, apply).

    python -m docs_automation consolidate SRC --plan PLAN.json
    python -m docs_automation consolidate SRC --apply --out DEST [--report REPORT.md]

The steps: read the tree (`files`), parse pages into units (`corpus`), profile their topics
(`topics`) and find near copies (`nearcopies`), decide (`plan`), render the output
(`render`, with `links`), verify it (`verify`, with the consolidator's parser) and audit it
(`audit`, rendered like the site, sharing nothing with the rest), and report (`report`);
`engine` runs them. Only the command line here and `files` touch files.

Exit status: 0 done, 1 the output failed verification and was not published (the report is
still written), 2 bad input or an unreadable file (one message says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ..errors import InputError, ToolError, VerificationError
from . import report
from .engine import Analysis, Settings, analyse, apply
from .files import read_tree
from .verify import Verification

__all__ = ["register", "run"]


def register(subcommands: Any) -> None:
    """Add the `consolidate` command to the `python -m docs_automation` parser."""
    parser = subcommands.add_parser(
        "consolidate",
        help="merge a Markdown tree by topic without losing a unit of content",
        description="Merge a messy Markdown tree by topic, losing no unit of content.",
    )
    parser.add_argument("src", type=Path, metavar="SRC", help="root of the Markdown tree")
    parser.add_argument("--plan", type=Path, metavar="PLAN.json", help="write the plan here")
    parser.add_argument("--apply", action="store_true", help="write the consolidated tree")
    parser.add_argument("--out", type=Path, metavar="DEST", help="new, empty output folder")
    parser.add_argument(
        "--protect",
        action="append",
        default=[],
        metavar="GLOB",
        help="never delete or merge away these paths (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave these pages out of the analysis; copied as they are",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.md|.html",
        help="write the maintainer's report (Markdown or HTML)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    src: Path = args.src
    if not src.is_dir():
        raise InputError(f"SRC {src} is not a folder")
    if args.apply and args.out is None:
        raise InputError("--apply needs --out DEST (a new folder for the consolidated tree)")
    if args.out is not None and not args.apply:
        raise InputError("--out is only used with --apply")
    root = src.resolve()
    out = args.out.resolve() if args.out is not None else None
    if out is not None and (out == root or root in out.parents or out in root.parents):
        raise InputError(f"DEST {args.out} must be outside SRC {src} (SRC is never modified)")
    if args.report is not None and args.report.suffix.lower() not in (".md", ".html", ".htm"):
        raise InputError(f"--report must end in .md or .html, not {args.report.name}")
    for option, path in (("--plan", args.plan), ("--report", args.report)):
        if path is None:
            continue
        where = path.resolve()  # through symbolic links, so no alias slips into SRC
        if root in where.parents:
            raise InputError(f"{option} {path} must be outside SRC {src} (SRC is never modified)")
        if out is not None and (where == out or out in where.parents):
            raise InputError(
                f"{option} {path} must be outside DEST {args.out}, which holds only the "
                "verified tree"
            )
        if where.is_dir():
            raise InputError(f"{option} {path} is a folder; give a file name")
    if (
        args.plan is not None
        and args.report is not None
        and (args.plan.resolve() == args.report.resolve())
    ):
        raise InputError(f"--plan and --report are both {args.plan}; give two files")


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run the command; return 0 on success, 1 when verification refused, 2 on bad input.

    Args:
        args: the parsed command line (`register` defines it).
        settings: the consolidator's limits; None uses the defaults (tests pass small ones).

    Returns:
        The exit status; every error has been printed to standard error as one message.
    """
    console = Console(stderr=True, quiet=args.quiet)
    try:
        _check_args(args)
        tree = read_tree(args.src, args.exclude)
        with Progress(console=console, transient=True, disable=args.quiet) as progress:
            analysis = analyse(tree, settings, args.protect, progress)
        result = None
        if args.plan is not None:
            document = analysis.plan.to_json()
            document["settings"] = asdict(analysis.settings)
            args.plan.parent.mkdir(parents=True, exist_ok=True)
            args.plan.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        if args.apply:
            result = apply(analysis, args.out, args.exclude)
    except VerificationError as error:
        # Errors go to stderr even with --quiet, unwrapped so that they can be grepped.
        print(f"consolidate: {error}", file=sys.stderr)
        _write_report(args, analysis, error.verification)
        return 1
    except (ToolError, OSError) as error:  # the boundary: one message, exit 2
        print(f"consolidate: {error}", file=sys.stderr)
        return 2
    _write_report(args, analysis, result)
    console.print(report.summary(analysis.plan, result, analysis.timings))
    return 0


def _write_report(
    args: argparse.Namespace, analysis: Analysis, result: Verification | None
) -> None:
    if args.report is None:
        return
    titles = {path: page.title for path, page in analysis.pages.items()}
    text = report.markdown(analysis.plan, result, analysis.timings, analysis.tree, titles)
    if args.report.suffix.lower() != ".md":
        text = report.html(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text, encoding="utf-8", errors="replace")
