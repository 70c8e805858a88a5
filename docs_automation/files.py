"""Reading and writing the files the docs tools produce, and telling when they drifted.

A generator returns `Rendered`: repo-relative POSIX paths mapped to their full text. Only
`write` touches the disk; `stale` compares without writing, which is what `--check` runs.
Text is always UTF-8 with `\\n` line ends, so a checkout on any platform compares equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["Rendered", "read_text", "stale", "write", "write_text"]

Rendered = dict[str, str]
"""Generated files: repo-relative POSIX path to the file's whole text."""


def read_text(path: Path) -> str:
    """The text of `path`, decoded as UTF-8.

    Raises:
        OSError: the file cannot be read; the caller reports it as a one-line failure.
    """
    return path.read_text(encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` as UTF-8 with `\\n` line ends, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


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

    Unchanged files are left alone so their modification times (and editors) are undisturbed.
    """
    changed = stale(root, rendered)
    for rel in changed:
        write_text(root / rel, rendered[rel])
    return changed
