"""Every fenced block of the docs, found, classified and tallied, without running anything.

`scan(page, text)` lists a page's fences with their position, language and the directive
written in an HTML comment on the line before (`<!-- illustrative: reason -->`,
`<!-- example: newcomer -->` or `<!-- example: prerequisites -->`). `classify` says how a
fence is proven true (executed, validated or marked illustrative); a fence it cannot place
is `unclassified`, which fails the docs tests. `tally` counts fences by language and
outcome for the report.

Fences are found with a line scanner rather than markdown-it: CommonMark does not know
Material's admonitions and content tabs, so a fence indented inside `!!! tip` reads as a
paragraph there, and such a block would escape the harness.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXECUTED",
    "ILLUSTRATIVE",
    "MARKED_SHARE_MAX",
    "UNCLASSIFIED",
    "VALIDATED",
    "Fence",
    "classify",
    "format_tally",
    "outcome",
    "scan",
    "tally",
]

_LANG_WIDTH = 12  # the tally's first column: the longest language name, `prometheus`, and room
_COUNT_WIDTH = 14  # each count column: its header, `illustrative`, and room

EXECUTED = "executed"
"""Outcome of a block that runs (python, bash, console, js, ts)."""
VALIDATED = "validated"
"""Outcome of a block checked against a definition (json frames, config, mermaid)."""
ILLUSTRATIVE = "illustrative"
"""Outcome of a block marked `<!-- illustrative: reason -->`; neither run nor checked."""
UNCLASSIFIED = "unclassified"
"""Outcome of a block none of the rules covers; the tests fail on it."""

MARKED_SHARE_MAX = 0.05
"""Largest share of fences that may be marked illustrative (the issue's "under 5 %")."""

# Language of the info string -> how its fences are proven. `yaml` is placed by content.
_KINDS: dict[str, str] = {
    "py": "python",
    "python": "python",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
    "console": "console",
    "json": "frame",
    "js": "js",
    "javascript": "js",
    "ts": "ts",
    "typescript": "ts",
    "env": "settings",
    "dotenv": "settings",
    "markdown": "markdown",
    "md": "markdown",
    "mermaid": "mermaid",
}
_RUN_KINDS = frozenset({"python", "bash", "console", "js", "ts", "newcomer", "prerequisites"})
# `<!-- example: VALUE -->` -> the runner, and the languages such a block may be written in.
_EXAMPLE_KINDS: dict[str, frozenset[str]] = {
    "newcomer": frozenset({"bash", "sh", "shell"}),
    "prerequisites": frozenset({"bash", "sh", "shell", "console"}),
}

# A `yaml` block that includes files from here is Prometheus config (rules or scrape config),
# checked like one written inline: the harness reads the included text.
_PROMETHEUS_DIR = "deploy/prometheus/"

_OPEN = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<key>illustrative|example)\s*:\s*(?P<value>.*?)\s*-->\s*$")
_SNIPPET = re.compile(r"""^\s*-{1,}8<-{1,}\s+["']?(?P<path>[^"'\s]+)["']?\s*$""")


@dataclass(frozen=True)
class Fence:
    """One fenced block of a docs page.

    Attributes:
        page: the page's path relative to the docs folder, POSIX style (`how-to/secure.md`).
        line: 1-based line of the opening fence.
        lang: the info string's first word, lower-cased (`""` when there is none).
        info: the whole info string (`py title="client.py"`).
        body: the block's text with the fence's indentation removed.
        indent: spaces the block was indented by (inside admonitions, lists or tabs).
        start: character offset of the body in the page (what `--update-examples` rewrites).
        end: character offset just past the body.
        directive: `("illustrative", reason)` or `("example", value)` from the comment on the
            line before the fence, or None.
        included: files the body pulls in with `pymdownx.snippets` (`--8<-- "path"`),
            relative to the repository root.
    """

    page: str
    line: int
    lang: str
    info: str
    body: str
    indent: int
    start: int
    end: int
    directive: tuple[str, str] | None = None
    included: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """`page.md:line`, the test id and the name in every report."""
        return f"{self.page}:{self.line}"

    def source(self, root: Path) -> str:
        """The code a reader sees: the included files' text, or the body itself."""
        if not self.included:
            return self.body
        return "".join((root / rel).read_text(encoding="utf-8") for rel in self.included)


def scan(page: str, text: str) -> list[Fence]:
    """Every fenced block of one page, in page order (nested fences belong to their parent).

    Pure: nothing is read or run. A fence left open runs to the end of the page, as in
    CommonMark.

    Args:
        page: the page's path relative to the docs folder, POSIX style (`how-to/secure.md`);
            it becomes each fence's `page` and the first half of its `id`.
        text: the page's whole Markdown text.

    Returns:
        The page's fences, each with its 1-based line, language, body, character offsets and
        the directive on the line before it; pass each to `classify`.
    """
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    fences: list[Fence] = []
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i].rstrip("\n"))
        if not opened:
            i += 1
            continue
        indent, marker = len(opened["indent"]), opened["fence"]
        close = re.compile(rf"^ *{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j].rstrip("\n")):
            j += 1
        raw = lines[i + 1 : j]
        body = "".join(
            line[indent:] if not line[:indent].strip() else line.lstrip() for line in raw
        )
        info = opened["info"].strip().strip("{}").strip()
        fences.append(
            Fence(
                page=page,
                line=i + 1,
                lang=(info.split() or [""])[0].lstrip(".").lower(),
                info=info,
                body=body,
                indent=indent,
                start=offsets[i + 1],
                end=offsets[j] if j < len(lines) else offsets[-1],
                directive=_directive_before(lines, i),
                included=tuple(m["path"] for m in map(_SNIPPET.match, raw) if m),
            )
        )
        i = j + 1
    return fences


def _directive_before(lines: list[str], index: int) -> tuple[str, str] | None:
    k = index - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    found = _DIRECTIVE.match(lines[k]) if k >= 0 else None
    return (found["key"], found["value"]) if found else None


def classify(fence: Fence) -> str | None:
    """How `fence` is proven: a runner's name, `illustrative`, or None (unclassified).

    Runners: python, bash, console, js, ts, newcomer (the whole page in a fresh virtual
    environment), prerequisites (a page's set-up: venv, install, the server it needs; run
    only by the page run, where it is the page's first step), frame (schema), settings
    (`Settings.from_env`), prometheus (rules or scrape config against the live metrics),
    markdown (its own fences must classify) and mermaid (parsed by mermaid in Chromium).

    Args:
        fence: a block from `scan` or `docs_fences`.

    Returns:
        The runner's name, `illustrative` for a block marked
        `<!-- illustrative: reason -->`, or None when no rule covers the block (an
        illustrative mark without a reason, an unknown `example:` value, or a shell
        directive on a block that is not shell): the docs tests fail on None. `outcome` turns the
        name into a tally column.
    """
    if fence.directive is not None:
        key, value = fence.directive
        if key == "illustrative":
            return ILLUSTRATIVE if value else None  # a mark needs its reason
        langs = _EXAMPLE_KINDS.get(value)
        return value if langs is not None and fence.lang in langs else None
    kind = _KINDS.get(fence.lang)
    prometheus = re.search(r"^(groups|scrape_configs):", fence.body, re.M) or (
        fence.included and all(path.startswith(_PROMETHEUS_DIR) for path in fence.included)
    )
    if kind is None and fence.lang in ("yaml", "yml") and prometheus:
        return "prometheus"
    return kind


def outcome(kind: str | None) -> str:
    """The tally column for a runner name from `classify`."""
    if kind is None:
        return UNCLASSIFIED
    if kind == ILLUSTRATIVE:
        return ILLUSTRATIVE
    return EXECUTED if kind in _RUN_KINDS else VALIDATED


def tally(fences: Iterable[Fence]) -> Counter[tuple[str, str]]:
    """Fences counted by `(language, outcome)`."""
    return Counter((f.lang or "(none)", outcome(classify(f))) for f in fences)


def format_tally(counts: Counter[tuple[str, str]]) -> str:
    """The tally as a small text table with totals and the marked share."""
    columns = (EXECUTED, VALIDATED, ILLUSTRATIVE, UNCLASSIFIED)
    langs = sorted({lang for lang, _ in counts})
    rows = [f"{'language':<{_LANG_WIDTH}}" + "".join(f"{c:>{_COUNT_WIDTH}}" for c in columns)]
    for lang in langs:
        cells = "".join(f"{counts[(lang, c)]:>{_COUNT_WIDTH}}" for c in columns)
        rows.append(f"{lang:<{_LANG_WIDTH}}" + cells)
    totals = [sum(n for (_, c), n in counts.items() if c == col) for col in columns]
    rows.append(f"{'total':<{_LANG_WIDTH}}" + "".join(f"{n:>{_COUNT_WIDTH}}" for n in totals))
    whole = sum(totals)
    share = totals[2] / whole if whole else 0.0
    rows.append(
        f"{whole} blocks; marked illustrative {share:.1%} (limit {MARKED_SHARE_MAX:.0%}); "
        f"unclassified {totals[3]}"
    )
    return "\n".join(rows)
