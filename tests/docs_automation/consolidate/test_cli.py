"""The consolidator's options mean what they say (docs_automation.consolidate.cli):
`--protect`, where `--plan` and `--report` may be written, and DEST's permissions."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from docs_automation.cli import main
from docs_automation.consolidate.files import publish
from docs_automation.errors import InputError

pytestmark = pytest.mark.unit  # small trees made in the tests

RETRIES = "# Upload retries\n\nUploads retry five times with a jittered backoff of two seconds.\n"
TREE = {
    "docs/upload-retries.md": RETRIES,
    "versions/1.0/upload-retries.md": RETRIES,
    "docs/billing.md": "# Billing\n\nInvoices are generated on the first day of each month.\n",
    "docs/img/flow.txt": "not markdown\n",
}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def consolidate(src: Path, *extra: str) -> int:
    return main(["consolidate", str(src), "--quiet", *extra])


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", TREE)


def test_a_protected_page_is_never_the_destination_of_a_redirect(src: Path, tmp_path: Path):
    # The live page equals its frozen copy under versions/; deleting the live page and
    # redirecting it into the protected copy would send readers to the old version.
    (src / "docs/current.md").symlink_to("../versions/1.0/upload-retries.md")
    dest, plan_path = tmp_path / "dest", tmp_path / "plan.json"
    assert (
        consolidate(src, "--apply", "--out", str(dest), "--plan", str(plan_path),
                    "--protect", "versions/**")
        == 0
    )  # fmt: skip
    plan = json.loads(plan_path.read_text())
    protected = set(plan["protected"])
    assert protected == {"versions/1.0/upload-retries.md"}
    assert not protected & set(plan["redirects"].values())
    assert not protected & {merge["target"] for merge in plan["merges"]}
    assert not protected & {home for d in plan["deletions"] for home in d["covered_by"]}
    assert (dest / "docs/upload-retries.md").read_text() == RETRIES
    # A symbolic link to the protected page is copied, not redirected into it.
    assert not (dest / "docs/current.md").is_symlink()
    assert (dest / "docs/current.md").read_text() == RETRIES


def test_without_protect_one_of_two_copies_still_goes(src: Path, tmp_path: Path) -> None:
    # The same tree unprotected: the rule above is what keeps the live page, not chance.
    plan_path = tmp_path / "plan.json"
    assert consolidate(src, "--plan", str(plan_path)) == 0
    assert len(json.loads(plan_path.read_text())["deletions"]) == 1


@pytest.mark.parametrize(
    ("option", "where", "expected"),
    [
        ("--plan", "src/plan.json", "outside SRC"),
        ("--report", "src/docs/report.md", "outside SRC"),
        ("--plan", "dest/plan.json", "outside DEST"),
        ("--report", "dest/report.html", "outside DEST"),
        ("--plan", ".", "is a folder"),
        ("--report", "folder.md", "is a folder"),
        ("--plan", "same.md", "both"),
    ],
)
def test_plan_and_report_paths_that_would_write_into_src_or_dest_are_refused(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, where: str,
    expected: str,
) -> None:  # fmt: skip
    (tmp_path / "folder.md").mkdir()
    before = digest(src)
    extra = ["--report", str(tmp_path / "same.md")] if where == "same.md" else []
    dest = tmp_path / "dest"
    assert (
        consolidate(src, "--apply", "--out", str(dest), option, str(tmp_path / where), *extra) == 2
    )
    assert expected in capsys.readouterr().err
    assert digest(src) == before and not dest.exists()
    assert not (tmp_path / "same.md").exists()  # refused before anything was written


def test_a_report_path_through_a_symlink_into_src_is_refused(src: Path, tmp_path: Path):
    (tmp_path / "into-src").symlink_to(src, target_is_directory=True)
    assert consolidate(src, "--report", str(tmp_path / "into-src/report.md")) == 2
    assert not (src / "report.md").exists()


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize(
    ("mask", "folder", "page"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)], ids=["022", "027"]
)
@pytest.mark.usefixtures("umask")
def test_the_published_dest_gets_the_umasks_permissions_not_0700(
    src: Path, tmp_path: Path, mask: int, folder: int, page: int
) -> None:
    (src / "docs/img/flow.txt").chmod(0o600)  # a private file is published readable
    (src / "docs/img/run.sh").write_text("echo hi\n")
    (src / "docs/img/run.sh").chmod(0o700)  # and a script stays executable
    os.umask(mask)
    dest = tmp_path / "out/dest"
    assert consolidate(src, "--apply", "--out", str(dest)) == 0
    mode = {p: stat.S_IMODE(p.stat().st_mode) for p in [dest.parent, dest, *dest.rglob("*")]}
    assert mode[dest] == mode[dest / "docs"] == mode[tmp_path / "out"] == folder
    assert mode[dest / "docs/billing.md"] == mode[dest / "redirects.json"] == page
    assert mode[dest / "docs/img/flow.txt"] == page and mode[dest / "docs/img/run.sh"] == folder
    assert (dest / "docs/img/run.sh").read_text() == "echo hi\n"


def test_dest_given_as_a_symlink_to_an_empty_folder_fills_that_folder(
    src: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "out").symlink_to("empty", target_is_directory=True)
    assert consolidate(src, "--apply", "--out", str(tmp_path / "out")) == 0
    assert (tmp_path / "empty/redirects.json").is_file()
    assert not list(tmp_path.glob(".*.partial-*"))  # no staging folder left behind


def test_a_dest_that_fills_up_before_publishing_is_refused_and_staging_removed(
    tmp_path: Path,
) -> None:
    staging, dest = tmp_path / ".dest.partial-1", tmp_path / "dest"
    (staging / "docs").mkdir(parents=True)
    (dest / "docs").mkdir(parents=True)  # another process wrote here meanwhile
    with pytest.raises(InputError, match=f"cannot publish the output to {dest}"):
        publish(staging, dest, ok=True)
    assert not staging.exists() and (dest / "docs").is_dir()
