"""Reading SRC (docs_automation.consolidate.files): line endings, BOMs, encodings, symbolic
links and unreadable entries, each on a small tree built here and run through the CLI.

The kinds come from public bug reports of other Markdown tools: markdown-it/markdown-it#252
(lone CR line endings), marp-team/marp-cli#357 and dotnet/docfx#199 (a BOM hides front
matter), mkdocs/mkdocs#1892 and #531 (pages that are not UTF-8), mkdocs/mkdocs#1753,
#2151 and #4028, facebook/docusaurus#10751 and zensical/zensical#142 (broken symbolic
links, symlinked pages and folders, links out of docs_dir), mkdocs/mkdocs#1981 (dot
folders left out of a site), srid/neuron#611 (NFD file names against NFC links).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docs_automation.cli import main
from docs_automation.consolidate.corpus import parse_page
from docs_automation.consolidate.engine import analyse, apply
from docs_automation.consolidate.files import MAX_LINKED_FILES, decode, encode, read_tree
from docs_automation.errors import InputError
from tests.procs import ROOT

pytestmark = pytest.mark.unit  # small trees made in the tests

# One topic written twice (a live guide and a report), so that the report merges into the
# guide; the other page is unrelated and stays.
GUIDE = "# Retry guide\n\nRetries back off exponentially up to a cap of one minute.\n\n" + (
    "See the [retry report](../reports/retry_report.md).\n"
)
REPORT = "# Retry report\n\nRetries recovered 97 of 100 failed jobs in the soak test.\n"
BILLING = "# Billing\n\nInvoices are generated on the first day of each month.\n"


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        target.write_bytes(data)
    return root


def retry_tree(root: Path, guide: str | bytes = GUIDE, report: str | bytes = REPORT) -> Path:
    files = {"docs/retry-guide.md": guide, "reports/retry_report.md": report}
    return make_tree(root, {**files, "docs/billing.md": BILLING})


def apply_to(src: Path, dest: Path, *extra: str) -> int:
    return main(["consolidate", str(src), "--apply", "--out", str(dest), "--quiet", *extra])


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + data)
    return sha.hexdigest()


def keys(path: Path) -> set[str]:
    text, _, _ = decode(path.read_bytes())
    return {unit.key for unit in parse_page(path.name, text).units}


def test_decode_normalises_bom_crlf_and_lone_cr_and_encode_restores_them() -> None:
    for raw, newline in ((b"\xef\xbb\xbfa\r\nb\r\n", "\r\n"), (b"a\rb\r", "\r"), (b"a\nb", "\n")):
        text, encoding, valid = decode(raw)
        assert valid and "\r" not in text and not text.startswith("\ufeff")
        assert encoding.newline == newline
        assert encode(text, encoding) == raw
    text, encoding, valid = decode(b"caf\xe9\r\n")  # Latin-1: kept as a lone surrogate
    assert not valid and encode(text, encoding) == b"caf\xe9\r\n"


def test_a_page_with_lone_cr_line_endings_merges_without_a_crash(tmp_path: Path) -> None:
    # markdown-it counts a lone CR as a line ending; the page split on LF alone did not,
    # and apply crashed with an IndexError. The report's BOM must not land mid-page either.
    src = retry_tree(tmp_path / "src", report=b"\xef\xbb\xbf" + REPORT.replace("\n", "\r").encode())
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    merged = dest / "docs/retry-guide.md"
    assert "Retries recovered 97 of 100 failed jobs in the soak test." in keys(merged)
    assert b"\xef\xbb\xbf" not in merged.read_bytes() and b"\r" not in merged.read_bytes()
    assert json.loads((dest / "redirects.json").read_text()) == {
        "reports/retry_report.md": "docs/retry-guide.md"
    }


def test_a_changed_page_keeps_its_line_endings_and_an_unchanged_one_its_bytes(
    tmp_path: Path,
) -> None:
    guide = GUIDE.replace("\n", "\r\n").encode()
    src = retry_tree(tmp_path / "src", guide=b"\xef\xbb\xbf" + guide)
    (src / "docs/billing.md").write_bytes(b"# Billing\r\n\r\nInvoices go out monthly.\n")
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    merged = (dest / "docs/retry-guide.md").read_bytes()
    assert merged.startswith(b"\xef\xbb\xbf# Retry guide\r\n")
    assert merged.count(b"\xef\xbb\xbf") == 1
    assert b"Retries recovered 97" in merged and b"\n" not in merged.replace(b"\r\n", b"")
    # Mixed line endings, untouched: copied byte for byte, not normalised.
    assert (dest / "docs/billing.md").read_bytes() == (src / "docs/billing.md").read_bytes()


def test_a_bom_before_front_matter_keeps_the_metadata(tmp_path: Path) -> None:
    page = "---\ntitle: Queue guide\ntags: [queue]\n---\n\n# Queue guide\n\nJobs retry 3 times.\n"
    src = make_tree(tmp_path / "src", {"queue-guide.md": b"\xef\xbb\xbf" + page.encode()})
    tree = read_tree(src)
    parsed = parse_page("queue-guide.md", tree.pages["queue-guide.md"])
    assert parsed.units[0].kind == "front_matter" and "title: Queue guide" in parsed.units[0].key
    assert [s.heading for s in parsed.sections] == ["", "Queue guide"]
    assert tree.encodings["queue-guide.md"].bom
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert (dest / "queue-guide.md").read_bytes() == (src / "queue-guide.md").read_bytes()


def test_a_page_that_is_not_utf8_is_never_merged_into_a_utf8_page(tmp_path: Path) -> None:
    report = REPORT.replace("soak test", "soak test at 20 °C").encode("latin-1")
    src = retry_tree(tmp_path / "src", report=report)
    dest, plan = tmp_path / "dest", tmp_path / "plan.json"
    report_md = tmp_path / "report.md"
    assert apply_to(src, dest, "--plan", str(plan), "--report", str(report_md)) == 0
    (dest / "docs/retry-guide.md").read_bytes().decode("utf-8")  # strict: no stray byte
    assert "Retries recovered" not in " ".join(keys(dest / "docs/retry-guide.md"))
    assert (dest / "reports/retry_report.md").read_bytes() == report
    assert "reports/retry_report.md" in json.loads(plan.read_text())["protected"]
    assert "not valid UTF-8" in report_md.read_text()


def test_a_page_that_is_not_utf8_never_receives_a_merged_page(tmp_path: Path) -> None:
    guide = GUIDE.replace("one minute", "one minute (Zürich)").encode("latin-1")
    src = retry_tree(tmp_path / "src", guide=guide)
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert (dest / "docs/retry-guide.md").read_bytes() == guide
    assert (dest / "reports/retry_report.md").read_text() == REPORT


def test_a_symlinked_page_is_redirected_to_where_its_page_went(tmp_path: Path) -> None:
    src = retry_tree(tmp_path / "src")
    (src / "reports/latest.md").symlink_to("retry_report.md")
    (src / "docs/billing.md").write_text(BILLING + "\nSee the [latest](../reports/latest.md).\n")
    dest, report = tmp_path / "dest", tmp_path / "report.md"
    assert apply_to(src, dest, "--report", str(report)) == 0
    redirects = json.loads((dest / "redirects.json").read_text())
    assert redirects["reports/latest.md"] == "docs/retry-guide.md"  # where the report went
    assert (
        "- `reports/latest.md` → `reports/retry_report.md`: redirected to `docs/retry-guide.md`"
        in report.read_text()
    )
    assert not (dest / "reports/latest.md").exists()
    assert "[latest](retry-guide.md)" in (dest / "docs/billing.md").read_text()


def test_a_symlinked_folder_makes_every_file_below_it_an_alias_or_a_copy(tmp_path: Path) -> None:
    src = make_tree(
        tmp_path / "src",
        {
            "versions/2.0/setup.md": "# Setup\n\nInstall the agent with pip on every host.\n",
            "versions/2.0/img/flow.png": b"\x89PNG not really",
            "index.md": "# Home\n\n[Setup](latest/setup.md) ![flow](latest/img/flow.png)\n",
        },
    )
    (src / "latest").symlink_to("versions/2.0", target_is_directory=True)
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert json.loads((dest / "redirects.json").read_text()) == {
        "latest/setup.md": "versions/2.0/setup.md"
    }
    copied = dest / "latest/img/flow.png"
    assert not copied.is_symlink() and copied.read_bytes() == b"\x89PNG not really"
    assert "[Setup](versions/2.0/setup.md)" in (dest / "index.md").read_text()


def test_a_protected_symlinked_page_stays_as_a_copy_of_its_page(tmp_path: Path) -> None:
    src = retry_tree(tmp_path / "src")
    (src / "reports/latest.md").symlink_to("retry_report.md")
    dest = tmp_path / "dest"
    assert apply_to(src, dest, "--protect", "reports/latest.md") == 0
    kept = dest / "reports/latest.md"
    assert not kept.is_symlink() and kept.read_text() == REPORT
    assert "reports/latest.md" not in json.loads((dest / "redirects.json").read_text())


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda src: (src / "notes.md").symlink_to("/etc/hostname"), "outside SRC"),
        (lambda src: (src / "notes.md").symlink_to("gone.md"), "cannot be followed"),
        (lambda src: (src / "docs/up").symlink_to("..", target_is_directory=True), "loop"),
        (lambda src: (src / "a.md").symlink_to("b.md") or (src / "b.md").symlink_to("a.md"),
         "cannot be followed"),
        (lambda src: os.mkfifo(src / "notes.md"), "not a file or a folder"),
    ],
    ids=["out-of-src", "broken", "folder-loop", "link-cycle", "fifo"],
)  # fmt: skip
def test_an_entry_that_cannot_be_read_as_a_file_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, expected: str
) -> None:
    # A FIFO would block a read forever; links out of SRC would publish files from
    # elsewhere (mkdocs/mkdocs#4028); broken links and loops were skipped in silence.
    src = retry_tree(tmp_path / "src")
    make(src)
    before = digest(src)
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 2
    err = capsys.readouterr().err
    assert expected in err and str(src) in err, err
    assert not dest.exists() and digest(src) == before


def as_unprivileged() -> list[str]:
    """A command prefix under which file permissions apply, even when the tests run as root.

    Root reads a chmod 000 file through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; setpriv
    (util-linux) starts the command without them, still as root, so it can run this
    project's Python wherever it lives.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if os.environ.get("CI"):  # CI has util-linux; a skip there would hide its absence
            pytest.fail("setpriv (util-linux) is missing, and the tests run as root")
        pytest.skip("running as root, where chmod 000 does not stop reads, and no setpriv")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("locked", ["reports/retry_report.md", "reports", "docs/flow.png"])
def test_an_unreadable_file_or_folder_is_an_error_naming_it_not_a_skip(
    tmp_path: Path, locked: str
) -> None:
    src = retry_tree(tmp_path / "src")
    (src / "docs/flow.png").write_bytes(b"\x89PNG")  # listed, opened only to be copied
    (src / locked).chmod(0)
    try:
        done = subprocess.run(
            [*as_unprivileged(), sys.executable, "-m", "docs_automation", "consolidate",
             str(src), "--plan", str(tmp_path / "plan.json"), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        (src / locked).chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "cannot " in done.stderr and f"{src / locked}: " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "plan.json").exists()  # refused before the analysis


def test_a_published_page_never_goes_into_a_hidden_one(tmp_path: Path) -> None:
    # MkDocs leaves dot files out of the site (exclude_docs defaults to ".*"): a redirect
    # into .claude/ would point at nothing, and the content merged there would leave the
    # site. On bee-hive, QUICK_REFERENCE.md went into .claude/QUICK_START.md this way.
    notes = "Workers pull jobs in batches of fifty from the main queue.\n"
    src = make_tree(
        tmp_path / "src",
        {
            "docs/queue-guide.md": "# Queue guide\n\nJobs retry three times before failing.\n",
            ".claude/queue_guide.md": "# Queue guide\n\nJobs retry three times before failing."
            "\n\nThe queue keeps failed jobs for a week.\n\nEach job has a timeout of an hour.\n",
            "docs/install.md": f"# Install\n\n{notes}",
            ".claude/memory/session_context.md": f"# Session context\n\n{notes}\nWe met.\n",
        },
    )
    dest, plan_path = tmp_path / "dest", tmp_path / "plan.json"
    assert apply_to(src, dest, "--plan", str(plan_path)) == 0
    plan = json.loads(plan_path.read_text())
    hidden_pages = {".claude/queue_guide.md", ".claude/memory/session_context.md"}
    assert not hidden_pages & {merge["target"] for merge in plan["merges"]}
    assert not {new for old, new in plan["redirects"].items() if old not in hidden_pages} & (
        hidden_pages
    )
    assert (dest / "docs/install.md").is_file()
    assert "The queue keeps failed jobs for a week." in keys(dest / "docs/queue-guide.md")


def test_a_published_symlink_to_a_hidden_page_is_copied_not_redirected(tmp_path: Path):
    src = make_tree(tmp_path / "src", {".notes/queue.md": "# Queue\n\nJobs retry three times.\n"})
    (src / "queue.md").symlink_to(".notes/queue.md")
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert (dest / "queue.md").read_bytes() == (src / ".notes/queue.md").read_bytes()
    assert json.loads((dest / "redirects.json").read_text()) == {}


def test_paths_with_spaces_and_decomposed_unicode_keep_their_exact_names(tmp_path: Path):
    # macOS writes file names decomposed (NFD); a redirect or link that re-composed the
    # name (NFC) would point at a file that is not there on a byte-exact file system.
    report = "docs/re\u0301sume\u0301 report.md"
    src = make_tree(
        tmp_path / "src",
        {
            "docs/my guides/resume guide.md": "# Resume guide\n\nJobs resume from the last "
            "acknowledged message.\n",
            report: "# Resume report\n\nResume took two seconds after a broker restart.\n",
            "docs/billing.md": BILLING + "\nSee [one](<re\u0301sume\u0301 report.md>) and "
            "[two](re%CC%81sume%CC%81%20report.md).\n",
        },
    )
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert json.loads((dest / "redirects.json").read_text()) == {
        report: "docs/my guides/resume guide.md"
    }
    billing = (dest / "docs/billing.md").read_text()
    assert billing.count("(my%20guides/resume%20guide.md)") == 2


def test_links_that_stand_for_too_many_files_are_refused_not_listed(tmp_path: Path) -> None:
    # Two links to the folder below in each of 30 folders stand for 2**30 files; they are
    # listed lazily, so the walk stops at the bound instead of building them all.
    src = make_tree(tmp_path / "src", {"d0/page.md": "# Page\n\nOne page at the bottom.\n"})
    for level in range(1, 31):
        (src / f"d{level}").mkdir()
        for name in ("a", "b"):
            (src / f"d{level}/{name}").symlink_to(f"../d{level - 1}", target_is_directory=True)
    with pytest.raises(InputError, match="more than 1000 files"):
        read_tree(src, max_linked_files=1000)
    assert MAX_LINKED_FILES >= 10 * 10_000  # ten times the biggest tree benchmarked


def test_a_symlink_that_stays_has_its_links_rewritten_from_its_own_place(tmp_path: Path):
    # The link resolves from the alias's folder, as MkDocs (following the link) resolved
    # it; copied unchanged, its link to the merged report broke and apply refused.
    src = retry_tree(tmp_path / "src")
    notes = (
        "# Old notes\n\nSee the [report](../reports/retry_report.md) and [billing](billing.md).\n"
    )
    make_tree(src, {"versions/1.0/notes.md": notes})
    (src / "docs/notes.md").symlink_to("../versions/1.0/notes.md")
    dest = tmp_path / "dest"
    assert apply_to(src, dest, "--protect", "versions/**") == 0
    assert (dest / "docs/notes.md").read_text() == notes.replace(
        "../reports/retry_report.md", "retry-guide.md"
    )


def test_a_symlink_to_an_excluded_page_is_copied_as_it_is(tmp_path: Path) -> None:
    # Its own name matches no --exclude glob, so reading DEST back took it for a page and
    # refused its link to the merged report (exit 1) although nothing was lost.
    src = retry_tree(tmp_path / "src")
    notes = "# Old notes\n\nSee the [report](../reports/retry_report.md).\n"
    make_tree(src, {"archive/notes.md": notes})
    (src / "docs/notes.md").symlink_to("../archive/notes.md")
    dest = tmp_path / "dest"
    assert apply_to(src, dest, "--exclude", "archive/**") == 0
    assert (dest / "docs/notes.md").read_text() == notes
    assert not (dest / "docs/notes.md").is_symlink()


def test_a_file_gone_between_reading_and_copying_is_an_error_naming_it(tmp_path: Path):
    src = retry_tree(tmp_path / "src")
    (src / "docs/flow.png").write_bytes(b"\x89PNG")
    analysis = analyse(read_tree(src))
    (src / "docs/flow.png").unlink()
    dest = tmp_path / "dest"
    with pytest.raises(InputError, match=f"cannot copy {src / 'docs/flow.png'}"):
        apply(analysis, dest)
    assert not dest.exists() and not list(tmp_path.glob(".dest.partial-*"))


def test_a_very_long_line_of_links_is_rewritten_in_one_pass(tmp_path: Path) -> None:
    # One 600 KB line (minified or generated Markdown): every link on it moves with the
    # report into docs/, in linear time (no regex backtracking on the long line).
    line = "Billing: " + " ".join(f"[{i}](../docs/billing.md)" for i in range(20_000))
    src = retry_tree(tmp_path / "src", report=REPORT + "\n" + line + "\n")
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    merged = (dest / "docs/retry-guide.md").read_text()
    assert merged.count("](billing.md)") == 20_000 and "../docs/billing.md" not in merged


@pytest.mark.parametrize("seed", range(12))
def test_random_trees_of_every_input_kind_apply_cleanly(tmp_path: Path, seed: int) -> None:
    # Pages of three topics in folders with spaces, dots and versions, with LF, CRLF or
    # lone CR endings, BOMs, cp1252 pages, links between them and symbolic links to them:
    # valid input, so exit 0, SRC unchanged, and no UTF-8 page gains a stray byte.
    rng = random.Random(seed)
    folders = ["docs", "reports", ".github", "versions/1.0", "docs/a b"]
    facts = ["Retries back off up to a minute.", "Jobs retry three times.", "Uploads resume."]
    paths = [
        f"{rng.choice(folders)}/{rng.choice(['retry', 'queue', 'upload'])}-"
        f"{rng.choice(['guide', 'report', 'plan', 'COMPLETE'])}{i}.md"
        for i in range(rng.randint(2, 8))
    ]
    files: dict[str, str | bytes] = {}
    for path in paths:
        lines = [f"# {Path(path).stem}", "", *rng.sample(facts, rng.randint(1, 3)), ""]
        for other in rng.sample(paths, rng.randint(0, 2)):
            href = os.path.relpath(other, os.path.dirname(path))
            lines += [f"See [x](<{href}>) and ![i]({href.replace(' ', '%20')}).", ""]
        text = "\n".join(lines).replace("\n", rng.choice(["\n", "\r\n", "\r"]))
        data = text.encode("utf-8" if rng.random() < 0.8 else "cp1252")
        files[path] = b"\xef\xbb\xbf" + data if rng.random() < 0.3 else data
    src = make_tree(tmp_path / "src", files)
    for number, target in enumerate(rng.sample(paths, rng.randint(0, 2))):
        link = src / rng.choice(["docs", "reports"]) / f"alias{number}.md"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(src / target, link.parent))
    before, dest = digest(src), tmp_path / "dest"
    protect = ["--protect", rng.choice(["versions/**", "docs/*"])] if rng.random() < 0.5 else []
    assert apply_to(src, dest, *protect) == 0
    assert digest(src) == before
    tree = read_tree(src)
    undecodable = set(tree.undecodable)
    undecodable |= {alias for alias, page in tree.aliases.items() if page in undecodable}
    for page in dest.rglob("*.md"):
        if page.relative_to(dest).as_posix() not in undecodable:
            page.read_bytes().decode("utf-8")  # strict
