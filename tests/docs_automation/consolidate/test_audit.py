"""The independent audit: each fault class of issue 12 in a hand-made SRC/DEST pair."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from docs_automation.consolidate import audit
from docs_automation.consolidate.audit import SITE_EXTENSIONS, Audit, audit_trees, render_page
from docs_automation.consolidate.engine import analyse, apply
from docs_automation.consolidate.files import read_tree
from docs_automation.consolidate.plan import Deletion
from docs_automation.errors import VerificationError
from tests.procs import ROOT

pytestmark = pytest.mark.unit  # small trees made in the tests; no sockets

# The consolidator's own parsing, keys and link code: the audit must share none of it.
FORBIDDEN = {"corpus", "links", "plan", "render", "topics", "nearcopies", "verify", "files"}


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def audit_of(
    tmp_path: Path,
    src: dict[str, str | bytes],
    dest: dict[str, str | bytes],
    redirects: dict[str, str] | None = None,
    homes: dict[str, list[str]] | None = None,
) -> Audit:
    out = dict(dest)
    out["redirects.json"] = json.dumps(redirects or {})
    return audit_trees(
        write(tmp_path / "src", src), write(tmp_path / "dest", out), homes or {}, workers=1
    )


def problems(result: Audit) -> str:
    return "\n".join(str(d) for d in result.differences)


def test_the_audit_imports_nothing_of_the_consolidators_parsing_keys_or_links() -> None:
    tree = ast.parse(Path(audit.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            imported |= {f"{'.' * node.level}{module}"}
            if node.level:
                imported |= {f"{'.' * node.level}{alias.name}" for alias in node.names}
    leaves = {name.lstrip(".").split(".")[-1] for name in imported}
    assert not leaves & FORBIDDEN, imported
    assert not any(name.startswith("markdown_it") for name in imported), imported
    assert not any(name.startswith(".") and name.strip(".") for name in imported), imported


def test_the_audit_renders_with_the_extensions_of_our_mkdocs_yml() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml names a Python function with !!python/name; only its presence matters here.
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    names = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    assert [n for n in names if n != "pymdownx.snippets"] == list(SITE_EXTENSIONS)


def test_a_page_is_read_into_blocks_with_their_containers() -> None:
    page = render_page(
        '\ufeff---\r\ntitle: Retries\r\n---\r\n# Retries\r\n\r\n!!! warning "Cap"\r\n\r\n'
        "    Shorter caps retry in lockstep.\r\n\r\n- Azure\r\n    - nested\r\n"
    )
    units = {(u.context, u.kind, u.text) for u in page.units}
    assert ((), "meta", "title: Retries") in units
    assert (("admonition warning: Cap",), "text", "Shorter caps retry in lockstep.") in units
    assert (("ul",), "item", "Azure") in units and (("ul", "ul"), "item", "nested") in units
    assert page.anchors["retries"] == "Retries"


def test_an_identical_tree_has_no_difference(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "a.md": "# A\n\nSee [b](sub/b.md#usage) and ![c](img/c.png).\n",
        "sub/b.md": "# B\n\n## Usage\n\n- Azure\n",
        "img/c.png": b"\x89PNG",
    }
    result = audit_of(tmp_path, files, files)
    assert result.ok, problems(result)
    assert result.blocks_total == result.blocks_kept == 5 and result.links_kept == 2


def test_a_removed_page_must_have_a_redirect_and_its_blocks_on_the_target(
    tmp_path: Path,
) -> None:
    src: dict[str, str | bytes] = {"a.md": "# A\n\nAlpha fact.\n", "b.md": "# B\n\nBeta fact.\n"}
    kept = audit_of(
        tmp_path / "1", src, {"a.md": "# A\n\nAlpha fact.\n\nBeta fact.\n"}, {"b.md": "a.md"}
    )
    assert kept.ok, problems(kept)
    lost = audit_of(tmp_path / "2", src, {"a.md": "# A\n\nAlpha fact.\n"}, {"b.md": "a.md"})
    assert "b.md:3: text lost" in problems(lost)
    gone = audit_of(tmp_path / "3", src, {"a.md": "# A\n\nAlpha fact.\n\nBeta fact.\n"})
    assert "b.md:1: removed without a redirect" in problems(gone)
    hidden = dict(src, **{".notes/b.md": "# B\n\nBeta fact.\n"})
    kept_hidden = {".notes/b.md": "# B\n\nBeta fact.\n", "a.md": "# A\n\nAlpha fact.\n"}
    off_site = audit_of(tmp_path / "4", hidden, kept_hidden, {"b.md": ".notes/b.md"})
    assert "b.md:1: redirected to .notes/b.md, in a folder MkDocs leaves out" in problems(off_site)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "| OS | ok |\n| --- | --- |\n| Windows | ✅ |\n",
            "| OS | ok |\n| --- | --- |\n| Windows | ❌ |\n",
        ),
        ("Requires Python >= 3.11.\n", "Requires Python < 3.11.\n"),
        ("- AWS\n- Azure\n", "- AWS\n"),
        ("```yaml\na:\n  b: 1\n```\n", "```yaml\na:\nb: 1\n```\n"),
    ],
    ids=["symbol-in-a-row", "comparison-operator", "short-item", "code-indentation"],
)
def test_a_symbol_a_short_item_or_code_indentation_is_content(
    tmp_path: Path, before: str, after: str
) -> None:
    result = audit_of(tmp_path, {"a.md": "# A\n\n" + before}, {"a.md": "# A\n\n" + after})
    assert " lost " in problems(result)


def test_an_admonition_emptied_into_a_code_block_is_found(tmp_path: Path) -> None:
    src = '# A\n\n!!! warning "Keep the cap above one minute"\n\n    Shorter caps retry.\n'
    dest = '# A\n\n!!! warning "Keep the cap above one minute"\n\n```\nShorter caps retry.\n```\n'
    found = problems(audit_of(tmp_path, {"a.md": src}, {"a.md": dest}))
    assert "a.md:5: text lost (in admonition warning: Keep the cap above one minute" in found


def test_an_unclosed_details_that_swallows_the_rest_of_a_page_is_found(tmp_path: Path) -> None:
    src = "# A\n\n<details>\n<summary>More</summary>\nHidden.\n</details>\n\nVisible fact.\n"
    dest = "# A\n\n<details>\n<summary>More</summary>\nHidden.\n\nVisible fact.\n"
    found = problems(audit_of(tmp_path, {"a.md": src}, {"a.md": dest}))
    assert "a.md:8: text lost (in page; DEST a.md): 'Visible fact.'" in found


def test_a_link_over_two_lines_left_pointing_at_the_old_folder_is_found(tmp_path: Path) -> None:
    src: dict[str, str | bytes] = {
        "a/page.md": "# P\n\nSee the [gateway\nnotes](gateway.md).\n",
        "a/gateway.md": "# Gateway\n\nNotes.\n",
    }
    dest: dict[str, str | bytes] = {
        "b/page.md": "# P\n\nSee the [gateway\nnotes](gateway.md).\n",
        "a/gateway.md": "# Gateway\n\nNotes.\n",
    }
    found = problems(audit_of(tmp_path, src, dest, {"a/page.md": "b/page.md"}))
    assert "a/page.md:4: link 'gateway.md' is broken in DEST" in found
    fixed = dict(dest, **{"b/page.md": "# P\n\nSee the [gateway\nnotes](../a/gateway.md).\n"})
    assert audit_of(tmp_path / "2", src, fixed, {"a/page.md": "b/page.md"}).ok


def test_raw_html_images_and_links_are_blocks_and_links(tmp_path: Path) -> None:
    page = '# P\n\n<p align="center">\n<img src="img/curve.png" alt="Retry curve">\n</p>\n\n'
    page += '<a href="data/soak.csv">soak data</a>\n'
    src: dict[str, str | bytes] = {
        "r/p.md": page,
        "r/img/curve.png": b"png",
        "r/data/soak.csv": "x",
    }
    dest: dict[str, str | bytes] = {
        "q/p.md": "# P\n\n" + page.split("\n\n", 2)[2],  # the image paragraph dropped
        "r/img/curve.png": b"png",
        "r/data/soak.csv": "x",
    }
    found = problems(audit_of(tmp_path, src, dest, {"r/p.md": "q/p.md"}))
    assert "text lost" in found and "![Retry curve]" in found
    assert "link 'data/soak.csv' is broken in DEST" in found


def test_a_footnote_moved_with_its_page_keeps_its_text(tmp_path: Path) -> None:
    src = "# P\n\nMeasured[^1].\n\n[^1]: Measured on the staging cluster.\n"
    mangled = "# P\n\nMeasured[^1].\n\n[^1]: ../reports/Measured on the staging cluster.\n"
    found = problems(audit_of(tmp_path, {"p.md": src}, {"p.md": mangled}))
    assert "item lost (in footnotes > ol" in found
    assert "anchor #fn:1 on p.md is '../reports/Measured" in found


def test_an_anchor_must_lead_to_the_same_heading_text(tmp_path: Path) -> None:
    src: dict[str, str | bytes] = {
        "a.md": "# A\n\n## Usage\n\nUse A.\n",
        "b.md": "# B\n\n## Usage\n\nUse B.\n",
        "c.md": "# C\n\nSee [B usage](b.md#usage).\n",
    }
    merged = "# A\n\n## Usage\n\nUse A.\n\n## B\n\n## Usage\n\nUse B.\n"
    # Python-Markdown's toc gives the second "Usage" the id usage_1.
    dest: dict[str, str | bytes] = {"a.md": merged}
    dest["c.md"] = "# C\n\nSee [B usage](a.md#usage_1).\n"
    result = audit_of(tmp_path, src, dest, {"b.md": "a.md"})
    assert result.ok, problems(result)
    dest["c.md"] = "# C\n\nSee [B usage](a.md#b).\n"  # resolves, to another heading
    found = problems(audit_of(tmp_path / "2", src, dest, {"b.md": "a.md"}))
    assert "anchor #b on a.md is 'B' in DEST, not 'Usage'" in found
    dest["c.md"] = "# C\n\nSee [B usage](a.md#usage).\n"  # same text, A's section (collision)
    found = problems(audit_of(tmp_path / "3", src, dest, {"b.md": "a.md"}))
    assert "anchor #usage on a.md leads to another 'Usage' section" in found


def test_links_may_go_through_the_emitted_redirects(tmp_path: Path) -> None:
    src: dict[str, str | bytes] = {"a.md": "# A\n\n[b](b.md)\n", "b.md": "# B\n\nBeta.\n"}
    dest: dict[str, str | bytes] = {"a.md": "# A\n\n[b](b.md)\n\nBeta.\n"}
    result = audit_of(tmp_path, src, dest, {"b.md": "a.md"})
    assert result.ok, problems(result)


def test_files_that_are_not_pages_and_pages_that_are_not_utf8_keep_their_bytes(
    tmp_path: Path,
) -> None:
    src: dict[str, str | bytes] = {"a.md": "# A\n", "b.md": b"# B \xaf\n", "c.csv": "1,2\n"}
    dest: dict[str, str | bytes] = {"a.md": "# A\n", "b.md": "# B \ufffd\n", "c.csv": "1,3\n"}
    found = problems(audit_of(tmp_path, src, dest))
    assert "b.md:1: changed in DEST" in found and "c.csv:1: changed in DEST" in found


def test_front_matter_behind_a_bom_is_metadata_and_must_be_kept(tmp_path: Path) -> None:
    src = "\ufeff---\ntitle: Retries\n---\n# Retries\n\nBody.\n"
    dest = "\ufeff---\n## title: Retries\n\n# Retries\n\nBody.\n"
    assert "meta lost" in problems(audit_of(tmp_path, {"a.md": src}, {"a.md": dest}))


def test_a_paragraph_cut_into_items_by_the_other_engine_is_kept(tmp_path: Path) -> None:
    # Python-Markdown needs a blank line before a list; CommonMark (the consolidator) does not.
    src: dict[str, str | bytes] = {"a.md": "# A\n\nFeatures:\n- Alpha one\n- Beta two\n"}
    dest: dict[str, str | bytes] = {"a.md": "# A\n\nFeatures:\n\n- Alpha one\n\n- Beta two\n"}
    result = audit_of(tmp_path, src, dest)
    assert result.ok, problems(result)


def test_linked_folders_are_read_under_their_names_but_never_in_circles(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "docs/a.md": "# A\n\n[b](../current/b.md)\n",
        "docs/b.md": "# B\n",
    }
    for side in ("src", "dest"):
        write(tmp_path / side, files)
        (tmp_path / side / "current").symlink_to("docs", target_is_directory=True)
        (tmp_path / side / "docs" / "loop").symlink_to("..", target_is_directory=True)
        (tmp_path / side / "outside").symlink_to("/", target_is_directory=True)
    (tmp_path / "dest" / "redirects.json").write_text("{}")
    result = audit_trees(tmp_path / "src", tmp_path / "dest", {}, workers=1)
    assert result.ok, problems(result)
    assert result.links_total == 2  # docs/a.md and its alias current/a.md
    (tmp_path / "dest" / "current").unlink()  # the linked folder left out of DEST
    found = problems(audit_trees(tmp_path / "src", tmp_path / "dest", {}, workers=1))
    assert "current/a.md:1: removed without a redirect" in found
    assert "link '../current/b.md' is broken in DEST (on docs/a.md" in found


def test_apply_publishes_nothing_when_the_audit_finds_a_difference(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {
            "docs/status.md": "# Status\n\nThe queue drains in four minutes.\n",
            "archive/ok.md": "# Ok\n\nOK\n",
        },
    )
    analysis = analyse(read_tree(src))
    # A deletion the evidence does not support, of a page `verify` sees nothing to keep in.
    analysis.plan.deletions.append(Deletion("archive/ok.md", ("docs/status.md",), "wrong"))
    analysis.plan.redirects["archive/ok.md"] = "docs/status.md"
    analysis.plan.kept.remove("archive/ok.md")
    dest = tmp_path / "dest"
    with pytest.raises(VerificationError) as caught:
        apply(analysis, dest)
    # `verify` may see the loss too (every unit counts, however short); the audit must.
    assert "audit: archive/ok.md:3: text lost" in str(caught.value)
    assert not dest.exists() and not list(tmp_path.glob(".dest.partial-*"))


def test_a_page_too_deep_or_too_slow_to_render_must_be_carried_as_it_is(tmp_path: Path) -> None:
    deep = "# Deep\n\n" + "- " * 3000 + "x\n"  # Python-Markdown recurses once per level
    files: dict[str, str | bytes] = {"a.md": "# A\n\nAlpha.\n", "deep.md": deep}
    assert audit_of(tmp_path, files, files).ok
    changed = dict(files, **{"deep.md": deep + "\nMore.\n"})
    found = problems(audit_of(tmp_path / "2", files, changed))
    assert "deep.md:1: nests too deep to render, so it must be carried as it is" in found
