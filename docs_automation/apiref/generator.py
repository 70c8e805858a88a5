"""The command shell every generator shares: render its files, then write them or `--check`.

A generator is a list of `Step`s, each a label and a pure function from the repository root
to `Rendered` files. `add_generator` registers the command; the command renders every step
(with a rich progress bar on a terminal), then writes what changed, or with `--check` writes
nothing and exits 1 naming each stale file and the command that regenerates it. Any failure
exits 2 with one line that says why.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import GenerateError

__all__ = [
    "ROOT",
    "Rendered",
    "Step",
    "add_generator",
    "fail",
    "read_text",
    "render_all",
    "run",
    "stale",
    "write",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository this package sits in: the default `--root` of every command."""

Rendered = dict[str, str]
"""Generated files: repo-relative POSIX path to the file's whole text."""

Step = tuple[str, Callable[[Path], Rendered]]
"""A label shown in the progress bar, and the pure function that renders part of the output."""


def read_text(path: Path) -> str:
    """The text of `path`, decoded as UTF-8."""
    return path.read_text(encoding="utf-8")


def stale(root: Path, rendered: Mapping[str, str]) -> list[str]:
    """The paths in `rendered` whose file under `root` is missing or differs, sorted."""
    out = []
    for rel, text in rendered.items():
        path = root / rel
        if not path.is_file() or read_text(path) != text:
            out.append(rel)
    return sorted(out)


def write(root: Path, rendered: Mapping[str, str]) -> list[str]:
    """Write every file of `rendered` under `root` that changed; return those paths, sorted.

    Files are UTF-8 with `\\n` line ends, so a checkout on any platform compares equal;
    unchanged files are left alone, so their modification times are undisturbed.
    """
    changed = stale(root, rendered)
    for rel in changed:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(rendered[rel])
    return changed


def render_all(root: Path, steps: Sequence[Step], console: Console | None = None) -> Rendered:
    """Run every step against `root` and merge their files.

    Args:
        root: the repository root the sources are read from.
        steps: the generator's steps, run in order.
        console: where progress goes; a bar is drawn only when it is a terminal.

    Raises:
        GenerateError: two steps render the same path, or a step raised it.
    """
    console = console or Console(stderr=True)
    out: Rendered = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("rendering", total=len(steps))
        for label, render in steps:
            progress.update(task, description=label)
            for path, text in render(root).items():
                if path in out:
                    raise GenerateError(f"{path} is rendered twice (second time by {label})")
                out[path] = text
            progress.advance(task)
    return out


def fail(command: str, exc: BaseException) -> None:
    """Print the one-line reason for `exc` to standard error, prefixed by `command`."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    print(f"{command}: error: {reason}", file=sys.stderr)


def run(command: str, steps: Sequence[Step], root: Path, check: bool) -> int:
    """Render `steps`, then write the files, or with `check` report the stale ones.

    This is a command's boundary: it raises nothing, and prints every outcome itself (the
    summary to standard output, stale files and errors to standard error).

    Args:
        command: the command's name, as typed after `python -m docs_automation`; it
            prefixes every line printed and names the command that regenerates the files.
        steps: the generator's steps, rendered in order.
        root: the repository root the sources are read from and the files written under.
        check: write nothing; report each file whose committed text differs.

    Returns:
        The exit status: 0 when the files were written or are current, 1 when `check`
        found drift, 2 when rendering failed (after printing one line naming the reason).
    """
    regenerate = f"python -m docs_automation {command}"
    try:
        rendered = render_all(root, steps)
        changed = stale(root, rendered) if check else write(root, rendered)
    except Exception as exc:  # the CLI boundary: any failure becomes one line and status 2
        fail(command, exc)
        return 2
    if check and changed:
        for path in changed:
            print(f"{command}: stale: {path}", file=sys.stderr)
        print(f"{command}: {len(changed)} stale file(s); run `{regenerate}`", file=sys.stderr)
        return 1
    verb = "current" if check else "written"
    print(f"{command}: {len(rendered)} file(s) {verb}, {len(changed)} changed")
    return 0


def add_generator(
    subcommands: Any, name: str, summary: str, steps: Sequence[Step]
) -> argparse.ArgumentParser:
    """Register generator command `name` on `subcommands` (an argparse subparsers action).

    The command takes `--check` and `--root`; its `func` runs `run`.

    Args:
        subcommands: what `argparse.ArgumentParser.add_subparsers` returned; a command
            module's `register` passes on the one it is given.
        name: the command's name (`apiref`).
        summary: one sentence for `--help`, used as both help and description.
        steps: what the command renders, in order.

    Returns:
        The command's parser, for options of its own.
    """
    parser: argparse.ArgumentParser = subcommands.add_parser(
        name, help=summary, description=summary
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming every generated file that is stale",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="repository root (default: this checkout)"
    )
    parser.set_defaults(func=lambda args: run(name, steps, args.root, args.check))
    return parser
