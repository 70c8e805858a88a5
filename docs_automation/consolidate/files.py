"""Every file read and write of the consolidator; the rest of it works on strings.

What `read_tree` does with what it finds in SRC (the how-to lists the same rules):

- **Line endings and BOM.** A page's text is normalised before anyone parses it: a UTF-8
  byte-order mark is dropped and CRLF and lone CR line endings become LF. CommonMark counts
  all three as line endings (spec 0.31.2 §2.1), markdown-it normalises them inside its
  parser (so its line maps would not match a page split on LF alone), and a BOM hides the
  `---` that opens front matter. A page written back unchanged gets its original bytes; a
  changed page keeps its BOM and its most common line ending.
- **Not UTF-8.** A page that is not valid UTF-8 is decoded with `surrogateescape` (its stray
  bytes survive a round trip) and listed in `Tree.undecodable`; `analyse` protects it, so
  it is never merged into a UTF-8 page and never receives another page's text.
- **Symbolic links.** A link is followed to what it points to, which must be inside SRC: a
  link to an analysed page is an *alias* of that page (`analyse` redirects it to wherever
  the page's content goes, or, where no redirect may go, `apply` writes the page at the
  alias's place), a link to any other file is copied as the file it points to, and a
  link to a folder makes every file below it an alias or a copy the same way. A link out
  of SRC, a broken link and a link loop are refused with `InputError`.
- **Unreadable input.** A file or folder that cannot be read, or an entry that is neither
  a file nor a folder (a FIFO, a socket, a device), is an `InputError` naming it; nothing
  in SRC is skipped silently.

What is written gets the permissions git checks files out with, less the umask (folders
and executables 0777, other files 0666: 0755 and 0644 by default), whatever SRC's modes.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError

__all__ = [
    "MARKDOWN_SUFFIXES",
    "MAX_LINKED_FILES",
    "Encoding",
    "Tree",
    "decode",
    "encode",
    "matches",
    "publish",
    "read_tree",
    "staging_dir",
    "write_tree",
]

MARKDOWN_SUFFIXES = (".md", ".markdown")
"""File name endings parsed as Markdown; every other file is copied as it is."""
MAX_LINKED_FILES = 100_000
"""Files that symbolic links in SRC may stand for, all links together. Ten times the
biggest tree benchmarked (10,000 pages): two links to one folder in each of thirty nested
folders stand for 2**30 files, which no walk should try to list."""
_BOM = "\ufeff"
#: Names tried for a staging folder before giving up: each is 32 random bits, so a clash
#: means something else is creating the same names on purpose.
_STAGING_TRIES = 100


class Encoding(NamedTuple):
    """How a page's bytes differed from plain UTF-8 with LF line endings.

    Attributes:
        bom: the page began with a UTF-8 byte-order mark.
        newline: its most common line ending: `"\\n"`, `"\\r\\n"` or `"\\r"`.
    """

    bom: bool
    newline: str


_PLAIN = Encoding(bom=False, newline="\n")


@dataclass
class Tree:
    """A folder's files, by POSIX path relative to its root.

    Attributes:
        root: the folder that was read; every path is relative to it.
        pages: Markdown files to analyse, path to text (BOM dropped, line endings LF).
        copied: files carried over unchanged (non-Markdown files, `--exclude` matches, and
            symbolic links to them, copied as the file they point to).
        undecodable: pages that are not valid UTF-8 (never merged; listed in the report).
        aliases: symbolic links to analysed pages (directly or through a linked folder),
            alias path to the path of the page it points to.
        encodings: pages whose bytes had a BOM or other line endings than LF, and how.
    """

    root: Path
    pages: dict[str, str] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, Encoding] = field(default_factory=dict)

    def all_paths(self) -> set[str]:
        """Return every file path of the tree: analysed, copied or an alias."""
        return set(self.pages) | set(self.copied) | set(self.aliases)


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


def decode(data: bytes) -> tuple[str, Encoding, bool]:
    """Decode a page's bytes into the text the parser sees.

    Returns:
        The text (BOM dropped, CRLF and lone CR turned into LF), how the bytes differed
        from that, and whether they were valid UTF-8 (if not, stray bytes are kept as
        lone surrogates by `surrogateescape`, and `encode` writes them back).
    """
    try:
        text, valid = data.decode("utf-8"), True
    except UnicodeDecodeError:
        text, valid = data.decode("utf-8", "surrogateescape"), False
    bom = text.startswith(_BOM)
    if bom:
        text = text[1:]
    newline = "\n"
    if "\r" in text:
        crlf = text.count("\r\n")
        counts = {"\n": text.count("\n") - crlf, "\r\n": crlf, "\r": text.count("\r") - crlf}
        newline = max(counts, key=lambda ending: (counts[ending], ending == "\n"))
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, Encoding(bom, newline), valid


def encode(text: str, encoding: Encoding = _PLAIN) -> bytes:
    """The bytes of a page's text written with its BOM and line ending (`decode` reversed)."""
    if encoding.newline != "\n":
        text = text.replace("\n", encoding.newline)
    return ((_BOM if encoding.bom else "") + text).encode("utf-8", "surrogateescape")


class _Listing:
    """Every entry of a folder tree, read once, without following symbolic links.

    `entries` maps a folder (POSIX, relative to the root, "" for the root) to its entries
    as `(name, kind)`, kind `file`, `dir` or `link`, sorted by name; `targets` maps a link
    to the path its chain of links resolves to, relative to the root, with `folders` the
    links that resolve to a folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.entries: dict[str, list[tuple[str, str]]] = {}
        self.targets: dict[str, str] = {}
        self.folders: set[str] = set()
        pending = [""]
        while pending:
            folder = pending.pop()
            found = self._scan(folder)
            self.entries[folder] = found
            pending.extend(_join(folder, name) for name, kind in found if kind == "dir")

    def _scan(self, folder: str) -> list[tuple[str, str]]:
        where = self.root / folder
        try:
            with os.scandir(where) as listing:
                items = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            raise InputError(f"cannot read folder {where}: {error.strerror}") from error
        found = []
        for entry in items:
            path = _join(folder, entry.name)
            # The type comes from the folder listing (d_type), with no system call per
            # entry on most file systems: this walk runs over every file of big trees.
            try:
                link = entry.is_symlink()
                folder_entry = not link and entry.is_dir(follow_symlinks=False)
                regular = not link and entry.is_file(follow_symlinks=False)
            except OSError as error:
                raise InputError(f"cannot read {where / entry.name}: {error.strerror}") from error
            if link:
                self._resolve(path)
                found.append((entry.name, "link"))
            elif folder_entry:
                found.append((entry.name, "dir"))
            elif regular:
                found.append((entry.name, "file"))
            else:
                raise InputError(
                    f"{self.root / path} is not a file or a folder (a FIFO, socket or device); "
                    "move it out of SRC"
                )
        return found

    def _resolve(self, path: str) -> None:
        full = self.root / path
        try:
            real = os.path.realpath(full, strict=True)  # follows the whole chain of links
            mode = os.stat(real).st_mode
        except OSError as error:  # ENOENT: broken; ELOOP: links that point at each other
            raise InputError(
                f"{full} is a symbolic link that cannot be followed ({error.strerror}); "
                "fix or remove it"
            ) from error
        if os.path.commonpath([self.real_root, real]) != self.real_root:
            raise InputError(
                f"{full} is a symbolic link to {real}, outside SRC; the consolidator reads "
                "only SRC (copy the file in, or move the link out)"
            )
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise InputError(f"{full} links to {real}, which is not a file or a folder")
        inside = Path(os.path.relpath(real, self.real_root)).as_posix()
        self.targets[path] = "" if inside == "." else inside  # "" is the root, as in `entries`
        if stat.S_ISDIR(mode):
            self.folders.add(path)

    def files(self) -> Iterator[str]:
        """Every regular file, by path (links not followed)."""
        for folder, found in sorted(self.entries.items()):
            for name, kind in found:
                if kind == "file":
                    yield _join(folder, name)

    def links(self) -> Iterator[tuple[str, str]]:
        """Every path a symbolic link makes, with the regular file it stands for.

        A link to a folder stands for every file below that folder, through further links
        too. A chain of folder links that comes back to itself would never end, so it is
        refused.
        """
        for link in sorted(self.targets):
            if link in self.folders:
                yield from self._below(link, self.targets[link], (link,))
            else:
                yield link, self.targets[link]

    def _below(self, alias: str, real: str, chain: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        for name, kind in self.entries[real]:
            path, inner = f"{alias}/{name}", _join(real, name)
            if kind == "file":
                yield path, inner
            elif kind == "dir":
                yield from self._below(path, inner, chain)
            elif inner not in self.folders:
                yield path, self.targets[inner]
            elif inner in chain:
                raise InputError(
                    f"{self.root / chain[0]} is a symbolic link loop: following it leads back "
                    f"through {self.root / inner}; remove one of the links"
                )
            else:
                yield from self._below(path, self.targets[inner], (*chain, inner))


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def read_tree(
    root: Path, exclude: Iterable[str] = (), max_linked_files: int = MAX_LINKED_FILES
) -> Tree:
    """Read a folder: Markdown pages as text, everything else listed for copying.

    Pages are normalised (BOM dropped, line endings LF) and symbolic links followed inside
    `root`, as the module docstring says.

    Args:
        root: the root of the Markdown tree (SRC); it is only read.
        exclude: globs of paths relative to `root` (`archive/**`, `*.draft.md`) whose pages
            are left out of the analysis and copied as they are.
        max_linked_files: files that symbolic links may stand for, all links together.

    Returns:
        The tree; pass it to `docs_automation.analyse`.

    Raises:
        InputError: `root` is not a folder; a file or folder cannot be read or is not a
            regular file or folder; a symbolic link is broken, loops, or leads out of
            `root`; links stand for more than `max_linked_files` files. The message names
            the path.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the root of a Markdown tree")
    patterns = tuple(exclude)
    listing = _Listing(root)
    tree = Tree(root=root)
    for path in listing.files():
        if not path.lower().endswith(MARKDOWN_SUFFIXES) or matches(path, patterns):
            # Fail now, not after planning: the file is opened only when apply copies it.
            if not os.access(root / path, os.R_OK):
                raise InputError(f"cannot read {root / path}: Permission denied")
            tree.copied.append(path)
            continue
        try:
            data = (root / path).read_bytes()
        except OSError as error:
            raise InputError(f"cannot read {root / path}: {error.strerror}") from error
        text, encoding, valid = decode(data)
        tree.pages[path] = text
        if encoding != _PLAIN:
            tree.encodings[path] = encoding
        if not valid:
            tree.undecodable.append(path)
    for count, (alias, target) in enumerate(listing.links()):
        if count == max_linked_files:
            raise InputError(
                f"symbolic links in {root} stand for more than {max_linked_files} files; "
                "replace links to big folders, or leave SRC's linked folders out of it"
            )
        page = alias.lower().endswith(MARKDOWN_SUFFIXES) and not matches(alias, patterns)
        if page and target in tree.pages:
            tree.aliases[alias] = target
        else:
            tree.copied.append(alias)  # copying follows the link: the file's own bytes
    tree.copied.sort()
    return tree


def staging_dir(dest: Path) -> Path:
    """Create an empty sibling folder of `dest` to build the output in before publishing it.

    The folder is made with the usual permissions (0777 less the umask, 0755 by default),
    not `tempfile.mkdtemp`'s 0700, because it is renamed to `dest` as it is.

    Raises:
        InputError: `dest` exists and is not an empty folder (nothing is overwritten).
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest} already exists and is not empty; choose a new --out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_STAGING_TRIES):
        staging = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging
    raise InputError(f"cannot create a staging folder beside {dest}; every name tried exists")


def write_tree(
    out: Path, tree: Tree, pages: Mapping[str, str], copies: Iterable[str], extra: Mapping[str, str]
) -> None:
    """Write the output: pages, files copied from `tree.root`, and `extra` files (UTF-8).

    A page whose text is what `read_tree` read at the same path (or, for an alias, at its
    page's path) gets the source file's bytes; another page is written with the BOM and
    line ending its page had in SRC (`encode`). Copies follow symbolic links, so an alias
    of a file is copied as the file it stands for.

    Raises:
        InputError: a file to copy cannot be read (or written); the message names it.
        OSError: a page cannot be written.
    """
    for path, text in pages.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tree.aliases.get(path, path)  # an alias is written as its page
        if tree.pages.get(source) == text:
            shutil.copyfile(tree.root / path, target)  # follows a link to the page
        else:
            target.write_bytes(encode(text, tree.encodings.get(source, _PLAIN)))
    for path, text in extra.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for path in copies:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _copy(tree.root / path, target)
        except OSError as error:  # read_tree lists these files without opening them
            raise InputError(f"cannot copy {tree.root / path}: {error.strerror}") from error


def _copy(source: Path, target: Path) -> None:
    """Copy a file's bytes (following links) with the permissions git would check it out
    with: 0666, or 0777 when the source is executable, less the umask (0644 or 0755),
    whatever the source's other bits; the kernel applies the umask to `os.open`'s mode."""
    mode = 0o777 if os.stat(source).st_mode & 0o111 else 0o666
    with open(source, "rb") as original:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(descriptor, "wb") as copy:
            shutil.copyfileobj(original, copy)


def publish(staging: Path, dest: Path, ok: bool) -> None:
    """Move a verified staging folder to `dest`, or delete it when verification failed.

    Raises:
        InputError: `dest` cannot be replaced (it is no longer an empty folder, or its
            folder is not writable); the staging folder is deleted first.
    """
    if not ok:
        shutil.rmtree(staging, ignore_errors=True)
        return
    try:
        if dest.exists():
            dest.rmdir()  # staging_dir checked that it is empty
        staging.rename(dest)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError(f"cannot publish the output to {dest}: {error.strerror}") from error
