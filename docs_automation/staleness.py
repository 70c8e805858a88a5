"""The `staleness` command: pages whose code changed after the page did, from git history.

A page talks about code in three ways, all found here: mkdocstrings identifiers (`::: x.y`),
snippet includes (`--8<-- "path"`), and code names in backticks that griffe resolves to an
object of our packages. Each resolves to a file. A page is stale when git has commits to one
of its files after the page's own last commit; the report lists those commits. Generated pages
are skipped: `--check` of their generator already proves them current.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import griffe
from rich.console import Console
from rich.table import Table

from .apiref.generator import ROOT, fail, read_text
from .errors import GenerateError

__all__ = [
    "DOCS",
    "GENERATED_MARK",
    "PACKAGES",
    "Resolver",
    "StalePage",
    "references",
    "register",
    "stale_pages",
]

DOCS = "docs"
"""The folder of pages, relative to the repository root."""

PACKAGES = ("reference_server", "docs_automation")
"""The packages whose names in backticks and `:::` identifiers are resolved."""

GENERATED_MARK = "Do not edit by hand"
"""Text of the banner that marks a generated page (those are drift-checked instead)."""

_IDENTIFIER = re.compile(r"^:::\s+([\w.]+)", re.M)
_SNIPPET = re.compile(r"""--8<--\s+["']([^"']+)["']""")
_CODE_NAME = re.compile(r"`([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)(?:\(\))?`")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class StalePage:
    """A page and the commits to its code made after its own last commit.

    Attributes:
        page: the page, relative to the repository root.
        commits: `(file, short hash, subject)` of each later commit, oldest file first.
    """

    page: str
    commits: tuple[tuple[str, str, str], ...]


class Resolver:
    """Resolves code names to the files that define them, with griffe.

    Args:
        root: the repository root (the packages are loaded from source there).
        packages: the packages whose names resolve.
    """

    def __init__(self, root: Path, packages: Sequence[str] = PACKAGES) -> None:
        self.root = root.resolve()
        self._loader = griffe.GriffeLoader(search_paths=[str(self.root)])
        self._packages = [p for p in packages if (root / p).exists()]
        for package in self._packages:
            self._loader.load(package)
        self._loader.resolve_aliases(implicit=False, external=False)

    def _lookup(self, dotted: str) -> griffe.Object | griffe.Alias | None:
        collection = self._loader.modules_collection
        head = dotted.split(".", 1)[0]
        candidates = [dotted] if head in self._packages else []
        # A bare or class-relative name (`Settings`, `Settings.from_env`) resolves only
        # through a package's public surface, so ordinary words in backticks never match.
        candidates += [
            f"{p}.{dotted}" for p in self._packages if head in (collection[p].exports or ())
        ]
        for candidate in candidates:
            try:
                found: griffe.Object | griffe.Alias = collection[candidate]
            except (KeyError, ValueError):
                continue
            return found
        return None

    def file_of(self, dotted: str) -> str | None:
        """The file defining `dotted`, relative to the root, or None if it does not resolve."""
        obj = self._lookup(dotted)
        if obj is None:
            return None
        try:
            target = obj.final_target if isinstance(obj, griffe.Alias) else obj
            path = target.filepath
        except griffe.AliasResolutionError:
            return None
        path = path[0] if isinstance(path, list) else path
        return path.resolve().relative_to(self.root).as_posix()


def _prose(text: str) -> Iterable[str]:
    """The lines of `text` outside fenced code blocks."""
    inside = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match and (inside is None or match.group(1) == inside):
            inside = None if inside else match.group(1)
            continue
        if inside is None:
            yield line


def references(text: str, resolver: Resolver) -> set[str]:
    """The files a page's text refers to, relative to the root.

    Args:
        text: the page's Markdown.
        resolver: resolves `:::` identifiers and code names in backticks to files.
    """
    out = set()
    for snippet in _SNIPPET.findall(text):
        path = snippet.split(":", 1)[0]
        for base in (resolver.root, resolver.root / DOCS):  # snippets' usual base paths
            if (base / path).is_file():
                out.add((base / path).resolve().relative_to(resolver.root).as_posix())
                break
    names = _IDENTIFIER.findall(text)
    names += [n for line in _prose(text) for n in _CODE_NAME.findall(line)]
    for name in names:
        found = resolver.file_of(name)
        if found:
            out.add(found)
    return out


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GenerateError("git is not installed") from None
    if proc.returncode != 0:
        raise GenerateError(f"git {args[0]} failed: {proc.stderr.strip().splitlines()[-1]}")
    return proc.stdout


def stale_pages(root: Path, packages: Sequence[str] = PACKAGES) -> list[StalePage]:
    """Every hand-written page under `root/docs` whose code has later commits than the page.

    Pages git does not track yet are skipped (they have no history to compare).

    Raises:
        GenerateError: `root` is not a git repository.
    """
    _git(root, "rev-parse", "--git-dir")
    resolver = Resolver(root, packages)
    out = []
    for path in sorted((root / DOCS).rglob("*.md")):
        text = read_text(path)
        if GENERATED_MARK in text:
            continue
        page = path.relative_to(root).as_posix()
        last = _git(root, "log", "-1", "--format=%H", "--", page).strip()
        if not last:
            continue
        commits = []
        for code_file in sorted(references(text, resolver)):
            log = _git(root, "log", "--format=%h%x09%s", f"{last}..HEAD", "--", code_file)
            commits += [(code_file, *line.split("\t", 1)) for line in log.splitlines()]
        if commits:
            out.append(StalePage(page, tuple((f, h, s) for f, h, s in commits)))
    return out


def _report(stale: Sequence[StalePage], console: Console) -> None:
    if not stale:
        console.print("staleness: every page is newer than the code it refers to")
        return
    table = Table("page", "code file", "later commit", "subject", title="Stale pages")
    for item in stale:
        for code_file, short, subject in item.commits:
            table.add_row(item.page, code_file, short, subject)
    console.print(table)


def _run(args: Any) -> int:
    console = Console()
    try:
        stale = stale_pages(args.root, args.package or PACKAGES)
    except Exception as exc:  # the CLI boundary: one line and status 2
        fail("staleness", exc)
        return 2
    _report(stale, console)
    if args.check and stale:
        print(f"staleness: {len(stale)} stale page(s): " + ", ".join(s.page for s in stale))
        return 1
    return 0


def register(subcommands: Any) -> None:
    """Add the `staleness` command to `subcommands` (an argparse subparsers action)."""
    parser = subcommands.add_parser(
        "staleness",
        help="Report pages whose code changed after the page did (from git history).",
        description="Report pages whose code changed after the page did (from git history).",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when any page is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument(
        "--package", action="append", help="a package whose names resolve (repeatable)"
    )
    parser.set_defaults(func=_run)
