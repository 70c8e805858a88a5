"""Every file read and write of the consolidator; the rest of it works on strings.

Text is decoded as UTF-8 with `surrogateescape`, so a page with a stray non-UTF-8 byte (the
bee-hive tree has one) is analysed like any other and written back byte for byte.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = [
    "MARKDOWN_SUFFIXES",
    "Tree",
    "matches",
    "publish",
    "read_tree",
    "staging_dir",
    "write_tree",
]

MARKDOWN_SUFFIXES = (".md", ".markdown")
"""File name endings parsed as Markdown; every other file is copied as it is."""
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


@dataclass
class Tree:
    """A folder's files, by POSIX path relative to its root.

    Attributes:
        root: the folder that was read; every path is relative to it.
        pages: Markdown files to analyse, path to text.
        copied: files carried over unchanged (non-Markdown files and `--exclude` matches).
        undecodable: pages that are not valid UTF-8 (kept byte for byte, listed in the report).
    """

    root: Path
    pages: dict[str, str] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)

    def all_paths(self) -> set[str]:
        """Return every file path of the tree, analysed or copied."""
        return set(self.pages) | set(self.copied)


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Whether a relative path matches any glob (`docs/v1/**`, `*.draft.md`, `archive/*`)."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(
            path, pattern.rstrip("/") + "/*"
        ):
            return True
        if pattern.endswith("/**") and path.startswith(pattern[:-2]):
            return True
    return False


def read_tree(root: Path, exclude: Iterable[str] = ()) -> Tree:
    """Read a folder: Markdown pages as text, everything else listed for copying.

    Symbolic links are skipped. Pages are decoded as UTF-8 with `surrogateescape`, so that
    a page with a stray byte is analysed too and written back byte for byte.

    Args:
        root: the root of the Markdown tree (SRC); it is only read.
        exclude: globs of paths relative to `root` (`archive/**`, `*.draft.md`) whose pages
            are left out of the analysis and copied as they are.

    Returns:
        The tree; pass it to `docs_automation.analyse`.

    Raises:
        InputError: `root` is not a folder.
        OSError: a file cannot be read.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the root of a Markdown tree")
    patterns = tuple(exclude)
    tree = Tree(root=root)
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = Path(folder, name)
            path = full.relative_to(root).as_posix()
            if full.is_symlink() or not full.is_file():
                continue
            if not name.lower().endswith(MARKDOWN_SUFFIXES) or matches(path, patterns):
                tree.copied.append(path)
                continue
            data = full.read_bytes()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                tree.undecodable.append(path)
            tree.pages[path] = data.decode(**_ENCODING)
    return tree


def staging_dir(dest: Path) -> Path:
    """Create an empty sibling folder of `dest` to build the output in before publishing it.

    Raises:
        InputError: `dest` exists and is not an empty folder (nothing is overwritten).
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest} already exists and is not empty; choose a new --out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))


def write_tree(
    out: Path, pages: Mapping[str, str], copies: Iterable[str], src: Path, extra: Mapping[str, str]
) -> None:
    """Write the output pages, copy the carried-over files from `src`, and add `extra` files."""
    for path, text in {**pages, **extra}.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, **_ENCODING)
    for path in copies:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / path, target)


def publish(staging: Path, dest: Path, ok: bool) -> None:
    """Move a verified staging folder to `dest`, or delete it when verification failed."""
    if not ok:
        shutil.rmtree(staging, ignore_errors=True)
        return
    if dest.exists():
        dest.rmdir()  # staging_dir checked that it is empty
    staging.rename(dest)
