"""The consolidator's engine: analyse a tree into a plan, apply it, verify the output.

`analyse` parses every page (in worker processes when there are many), profiles topics,
finds near copies and families, and makes the plan; `apply` renders the consolidated tree,
writes it to a staging folder, reads it back, verifies it, and only then publishes it.
`cli` is the command line around these two.

Its errors (`ConsolidateError` and below) are in `docs_automation.errors`; the command line
turns each into a message and an exit status.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rich.progress import Progress

from ..errors import InputError, SettingsError, VerificationError
from .audit import audit_trees
from .corpus import Page, parse_page
from .files import Tree, matches, publish, read_tree, staging_dir, write_tree
from .links import LinkRewriter
from .nearcopies import near_duplicates
from .plan import Plan, make_plan
from .render import render
from .topics import Profile, families, hidden, profile
from .verify import Verification, verify

__all__ = [
    "REDIRECTS_FILE",
    "Analysis",
    "Settings",
    "analyse",
    "apply",
]

MIN_NUM_PERM = 16
"""Fewest MinHash permutations allowed: below this the Jaccard estimate is too coarse
(its standard error is about 1/sqrt(num_perm), a quarter at 16)."""
REDIRECTS_FILE = "redirects.json"
"""The file in DEST that maps each removed page to its new home (mkdocs-redirects form)."""
#: Pages per task sent to a parse worker: big enough that pickling is a small share of the
#: work, small enough that two workers finish together (measured on bee-hive: 50 ran 2x
#: faster than serial on two idle cores; 200 left one worker idle at the end).
_CHUNK_PAGES = 50
#: Problems of each kind (lost units, broken links, unsound redirects) quoted in the
#: `VerificationError` message: enough to see the pattern on a terminal; the report lists
#: more (`report.EVIDENCE_ROWS`).
_FAILURE_LINES = 10


@dataclass(frozen=True)
class Settings:
    """Every limit of the consolidator, with its unit. Invalid values raise `SettingsError`.

    `Settings()`, the defaults (shown in the signature), is what the command line uses.

    Attributes:
        min_unit_words: words a prose unit needs to be substantive (must be kept). The
            default, 1, keeps every unit with any content, however short (`- Azure`, `✅`);
            with more, shorter prose may be dropped.
        shingle_words: words per shingle for near-copy detection.
        num_perm: MinHash permutations per page; the Jaccard estimate's standard error is
            about 1/sqrt(num_perm), 0.125 at 64. At least `MIN_NUM_PERM` (16).
        near_duplicate_threshold: estimated Jaccard similarity of two pages' shingles (0 to
            1) from which they are near copies.
        max_topic_pages: pages; a word in the topic signatures of more pages than this
            names no single topic.
        min_family_similarity: topic similarity (0 to 1) a page needs to its family's kept
            page to stay in the family.
        top_keywords: body keywords per page used in the topic similarity.
        posting_cap: pages; a unit shared by more pages than this is boilerplate and does
            not make pages containers of each other.
        workers: processes that parse pages; 0 means one per CPU.
        parallel_min_pages: pages; a smaller tree is parsed in this process, where
            starting workers would cost more than it saves.
        max_page_bytes: characters (bytes for ASCII text); a bigger page is refused with
            `InputError` rather than parsed.
    """

    min_unit_words: int = 1  # words: 1 keeps every unit, however short ("- Azure")
    shingle_words: int = 3  # words per shingle for near-copy detection
    num_perm: int = 64  # MinHash permutations (accuracy about 1/sqrt(64) = 0.125)
    near_duplicate_threshold: float = 0.5  # estimated Jaccard of shingles
    max_topic_pages: int = 60  # pages: a word in more signatures names no single topic
    min_family_similarity: float = 0.1  # topic similarity a member needs to its target
    top_keywords: int = 30  # body keywords per page used in the similarity
    posting_cap: int = 50  # pages: units shared more widely are boilerplate
    workers: int = 0  # processes for parsing; 0 means one per CPU
    parallel_min_pages: int = 400  # pages: below this, parse in this process
    max_page_bytes: int = 8_000_000  # bytes: a bigger "page" is refused, not parsed

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise SettingsError(f"setting {item.name} must be between 0 and 1, not {value}")
            if isinstance(value, int) and value < (0 if item.name == "workers" else 1):
                raise SettingsError(f"setting {item.name} must be a positive number, not {value}")
        if self.num_perm < MIN_NUM_PERM:
            raise SettingsError(
                f"setting num_perm must be at least {MIN_NUM_PERM}, not {self.num_perm}"
            )


@dataclass
class Analysis:
    """A parsed tree and its plan, with the time each step took: what `analyse` returns.

    Pass it to `apply` to write the output; `plan.to_json()` is the PLAN.json document.

    Attributes:
        tree: the source tree as read by `read_tree`.
        settings: the settings the analysis ran with (`apply` parses the output with them).
        pages: every analysed page parsed into units, by path relative to SRC.
        profiles: the topic profile of each analysed page, in path order.
        plan: what to keep, merge, delete and redirect, with the evidence.
        timings: wall time of each step, in seconds, by step name (`parse`, `plan`, and
            `audit` and `apply` once applied).
    """

    tree: Tree
    settings: Settings
    pages: dict[str, Page]
    profiles: list[Profile]
    plan: Plan
    timings: dict[str, float] = field(default_factory=dict)


_Job = tuple[list[tuple[str, str]], Settings, bool]


def _parse_chunk(job: _Job) -> list[tuple[Page, Profile | None]]:
    chunk, settings, profiled = job
    done: list[tuple[Page, Profile | None]] = []
    for path, text in chunk:
        page = parse_page(path, text, settings.min_unit_words)
        item = None
        if profiled:
            item = profile(page, settings.num_perm, settings.shingle_words, settings.top_keywords)
        # The caller has the text already; not sending it back halves what is pickled.
        done.append((replace(page, text=""), item))
    return done


def _parse_all(
    texts: dict[str, str],
    settings: Settings,
    progress: Progress | None,
    profiled: bool = True,
    label: str = "parse",
) -> list[tuple[Page, Profile | None]]:
    """Parse (and profile) pages, in `settings.workers` processes when there are many."""
    items = sorted(texts.items())
    for path, text in items:
        if len(text) > settings.max_page_bytes:
            raise InputError(
                f"{path} is over max_page_bytes ({settings.max_page_bytes}); "
                "leave it out with --exclude"
            )
    size = _CHUNK_PAGES
    chunks = [(items[i : i + size], settings, profiled) for i in range(0, len(items), size)]
    task = progress.add_task(label, total=len(items)) if progress else None
    workers = settings.workers or os.cpu_count() or 1
    results: list[tuple[Page, Profile | None]] = []
    if workers > 1 and len(items) >= settings.parallel_min_pages:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_parse_chunk, chunks):
                results.extend(done)
                if progress and task is not None:
                    progress.advance(task, len(done))
    else:
        for chunk in chunks:
            done = _parse_chunk(chunk)
            results.extend(done)
            if progress and task is not None:
                progress.advance(task, len(done))
    return [(replace(page, text=texts[page.path]), item) for page, item in results]


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while millions of small, acyclic objects are built.

    Units, sections and profiles hold no reference cycles, so reference counting frees them
    all; but each full collection walks every live object, and with a million units alive
    that made planning 10,000 pages superlinear (measured on 6,000 pages: 48 CPU s with the
    collector, 37 without). Forked parse workers inherit the pause.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyse(
    tree: Tree,
    settings: Settings | None = None,
    protect: Sequence[str] = (),
    progress: Progress | None = None,
) -> Analysis:
    """Parse every page of `tree` and plan its consolidation (no files are written).

    Args:
        tree: the source tree, from `read_tree`.
        settings: the consolidator's limits; None uses `Settings()`.
        protect: globs of paths relative to SRC (`docs/v1/**`) that are never deleted,
            merged away or merged into.
        progress: a rich progress display to show parsing on; None shows nothing.

    Returns:
        The analysis; read its `plan`, or pass it to `apply` to write the output.

    Raises:
        InputError: a page is over `settings.max_page_bytes` (leave it out with `exclude`
            when reading the tree).
    """
    with _without_cycle_collection():
        return _analyse(tree, settings or Settings(), protect, progress)


def _analyse(
    tree: Tree, settings: Settings, protect: Sequence[str], progress: Progress | None
) -> Analysis:
    clock = time.perf_counter()
    parsed = _parse_all(tree.pages, settings, progress)
    pages = {page.path: page for page, _ in parsed}
    profiles = [item for _, item in parsed if item is not None]
    parsed_at = time.perf_counter()
    # A page that is not UTF-8 is protected: merging it would splice its stray bytes into a
    # UTF-8 page, and merging into it would write UTF-8 text into a page of another encoding.
    protected = {path for path in pages if matches(path, protect)} | set(tree.undecodable)
    # A page with a code fence the site engine reads other than CommonMark (see
    # `corpus.parse_page`: `fences_differ`) is kept as it is: moving its blocks would change
    # what the site shows of them, since Python-Markdown reads them with their neighbours.
    protected |= {path for path, page in pages.items() if page.fences_differ}
    sketches = [(item.path, item.minhash) for item in profiles if item.units]
    near = near_duplicates(sketches, settings.near_duplicate_threshold)
    grouped = families(
        profiles,
        settings.max_topic_pages,
        settings.min_family_similarity,
        near,
        eligible=[path for path in pages if path not in protected],
    )
    plan = make_plan(
        [page for page, _ in parsed], profiles, grouped, near, protected, settings.posting_cap
    )
    for alias, target in sorted(tree.aliases.items()):
        # A symbolic link to a page is that page under a second name: it goes where the
        # page's content goes. Where no redirect may go, the link stays, copied as the page
        # it points to: a protected link, a link to a protected page (never a redirect's
        # destination), and a published link to a hidden page (MkDocs follows links, but
        # leaves hidden pages out of the site).
        home = plan.final(target)
        if not (matches(alias, protect) or home in protected or hidden(home) > hidden(alias)):
            plan.redirects[alias] = home
    plan.counts["files_before"] = len(tree.all_paths())
    plan.counts["files_after"] = len(plan.kept) + len(tree.copied) + len(_staying(tree, plan))
    timings = {"parse": parsed_at - clock, "plan": time.perf_counter() - clock}
    return Analysis(tree, settings, pages, profiles, plan, timings)


def _staying(tree: Tree, plan: Plan) -> list[str]:
    """The aliases that stay in DEST as pages (the rest are redirected)."""
    return sorted(alias for alias in tree.aliases if alias not in plan.redirects)


def apply(analysis: Analysis, dest: Path, exclude: Sequence[str] = ()) -> Verification:
    """Write the consolidated tree to `dest`, verify it from disk, and publish it if sound.

    The output is built in a staging folder beside `dest`, read back, parsed and checked
    with `consolidate.verify`, then rendered like the site and compared with SRC by
    `consolidate.audit`; only then is it renamed to `dest`.

    Args:
        analysis: what `analyse` returned; its `timings` gains `audit` and `apply`
            (seconds; `apply` includes `audit`).
        dest: the output folder: new, or empty (a symbolic link to an empty folder means
            that folder). Its parent is created when missing.
        exclude: the same globs the tree was read with, so that the output is read back the
            same way.

    Returns:
        What the verifier found; `ok` is true, since an unsound output raises instead.

    Raises:
        InputError: `dest` exists and is not empty, SRC has a `redirects.json` file, or a
            file to copy from SRC cannot be read (the message names it).
        VerificationError: a unit would be lost, a link broken or a redirect unsound, or the
            audit found a difference; the staging folder is removed and `dest` is not created.
    """
    with _without_cycle_collection():
        return _apply(analysis, dest, exclude)


def _apply(analysis: Analysis, dest: Path, exclude: Sequence[str]) -> Verification:
    tree, plan = analysis.tree, analysis.plan
    # DEST given as a symbolic link to an empty folder means that folder: the staging
    # folder is its sibling, and the rename replaces it (a link cannot be rmdir'd).
    dest = dest.resolve()
    if REDIRECTS_FILE in tree.all_paths():
        raise InputError(f"SRC already has {REDIRECTS_FILE}; the consolidator writes its own")
    clock = time.perf_counter()
    src_files = tree.all_paths()
    staying = _staying(tree, plan)
    rendered = render(analysis.pages, plan, src_files, set(tree.copied) | set(staying))
    if staying:
        # An alias that stays is its page at the alias's place: its relative links resolve
        # from there (as MkDocs, following the link, resolved them), and are rewritten so.
        links = LinkRewriter(plan, src_files, set(plan.kept) | set(tree.copied) | set(staying))
        for alias in staying:
            text = tree.pages[tree.aliases[alias]]
            page = parse_page(alias, text, analysis.settings.min_unit_words)
            rendered[alias] = links.rewrite(page, page.path)
    redirects = json.dumps(dict(sorted(plan.redirects.items())), indent=2) + "\n"
    staging = staging_dir(dest)
    try:
        write_tree(staging, tree, rendered, tree.copied, {REDIRECTS_FILE: redirects})
        written = read_tree(staging, exclude)
        # What SRC copied unanalysed, DEST holds unanalysed too: a Markdown file that is a
        # symbolic link to an excluded page matches no --exclude glob under its own name.
        for path in set(tree.copied) & written.pages.keys():
            del written.pages[path]
            written.copied.append(path)
        # The output is parsed with the same parser and settings as the source, or the check
        # means nothing. A page written byte for byte as it was in SRC parses as it did there.
        dest_pages = {
            path: analysis.pages[path]
            for path, text in written.pages.items()
            if path in analysis.pages and analysis.pages[path].text == text
        }
        changed = {path: text for path, text in written.pages.items() if path not in dest_pages}
        for page, _ in _parse_all(changed, analysis.settings, None, profiled=False):
            dest_pages[page.path] = page
        dest_files = written.all_paths() - {REDIRECTS_FILE}
        result = verify(analysis.pages, plan, dest_pages, src_files, dest_files)
        # The independent check (it shares no parser, key or link code with the writer).
        covered = {deletion.path: deletion.covered_by for deletion in plan.deletions}
        audit = audit_trees(tree.root, staging, covered, analysis.settings.workers)
        result.differences = [str(difference) for difference in audit.differences]
        analysis.timings["audit"] = audit.seconds
    except BaseException:
        publish(staging, dest, ok=False)  # a half-written output is never left behind
        raise
    publish(staging, dest, result.ok)
    analysis.timings["apply"] = time.perf_counter() - clock
    if not result.ok:
        raise VerificationError(_failure(result), result)
    return result


def _failure(result: Verification) -> str:
    lines = ["refusing to publish the output:"]
    for path, line, text in result.missing[:_FAILURE_LINES]:
        lines.append(f"  unit lost: {path}:{line}: {text}")
    for path, href in result.newly_broken[:_FAILURE_LINES]:
        lines.append(f"  link broken: {path} -> {href}")
    lines.extend(f"  redirect: {problem}" for problem in result.redirect_problems[:_FAILURE_LINES])
    lines.extend(f"  audit: {difference}" for difference in result.differences[:_FAILURE_LINES])
    return "\n".join(lines)
