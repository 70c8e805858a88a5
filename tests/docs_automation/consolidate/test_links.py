"""Links and anchors of a consolidated tree (docs_automation.consolidate.links), end to end.

Each tree is small and built here: a live guide in `docs/` and a report about the same topic
in `reports/`, which the plan merges into the guide, so every link of the report moves
folder. The inputs are the kinds of Markdown that public bug reports of Markdown tools are
about (multi-line link text, footnotes, HTML links, repeated heading slugs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docs_automation.consolidate.corpus import Link, parse_page
from docs_automation.consolidate.engine import analyse, apply
from docs_automation.consolidate.files import read_tree
from docs_automation.consolidate.links import LinkRewriter
from docs_automation.consolidate.plan import Plan
from docs_automation.consolidate.render import render
from docs_automation.consolidate.verify import verify
from docs_automation.errors import InputError

pytestmark = pytest.mark.unit  # small trees in a temp folder; no sockets

GUIDE = "docs/retry-guide.md"
REPORT = "reports/retry_report.md"


def merged(tmp_path: Path, report: str, **others: str) -> str:
    """Merge `report` into the retry guide; return the guide as written to DEST."""
    files = {
        GUIDE: "# Retry guide\n\nClients back off exponentially after a failed upload.\n\n"
        "## Setup\n\nSet the cap in the client settings file.\n",
        REPORT: report,
        "reports/soak.md": "# Soak\n\nThe soak test ran for a week without a crash.\n",
        **{path.replace("__", "/").replace("_md", ".md"): text for path, text in others.items()},
    }
    src = tmp_path / "src"
    for path, text in files.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    (src / "reports/img").mkdir(exist_ok=True)
    (src / "reports/img/curve.png").write_bytes(b"\x89PNG")
    (src / "reports/data").mkdir(exist_ok=True)
    (src / "reports/data/soak.csv").write_text("hour,errors\n1,0\n")
    analysis = analyse(read_tree(src))
    assert analysis.plan.final(REPORT) == GUIDE  # the report's links all move folder
    apply(analysis, tmp_path / "dest")
    return (tmp_path / "dest" / GUIDE).read_text(encoding="utf-8")


def test_link_text_over_two_lines_is_rewritten_when_its_page_moves(tmp_path: Path) -> None:
    guide = merged(tmp_path, "# Retry report\n\nSee the [soak\nnotes](soak.md) for the curve.\n")
    assert "See the [soak\nnotes](../reports/soak.md) for the curve." in guide


def test_a_footnote_definition_is_not_taken_for_a_link(tmp_path: Path) -> None:
    report = (
        "# Retry report\n\nRetries recovered 97 of 100 jobs.[^1] Jitter helped.[^2]\n\n"
        "[^1]: Measured on the staging cluster.\n[^2]: Measured\n"
    )
    guide = merged(tmp_path, report)
    assert "[^1]: Measured on the staging cluster." in guide
    assert "[^2]: Measured\n" in guide and "reports/Measured" not in guide


def test_html_image_and_anchor_links_are_kept_and_rewritten(tmp_path: Path) -> None:
    report = (
        '# Retry report\n\n<p align="center">\n<img src="img/curve.png" alt="Retry curve">\n'
        '</p>\n\nThe raw numbers are in <a href="data/soak.csv">the soak data</a>.\n'
    )
    guide = merged(tmp_path, report)
    assert '<p align="center">\n<img src="../reports/img/curve.png" alt="Retry curve">\n</p>' in (
        guide
    )
    assert '<a href="../reports/data/soak.csv">the soak data</a>' in guide


def test_links_in_code_and_lookalike_text_are_never_touched(tmp_path: Path) -> None:
    report = (
        "# Retry report\n\nRun `cat [x](soak.md)` and see [soak](soak.md).\n\n"
        "```md\n[soak](soak.md)\n```\n"
    )
    guide = merged(tmp_path, report)
    assert "Run `cat [x](soak.md)` and see [soak](../reports/soak.md)." in guide
    assert "```md\n[soak](soak.md)\n```" in guide


def test_a_merged_heading_whose_slug_is_taken_gets_the_next_id_and_links_follow(
    tmp_path: Path,
) -> None:
    report = (
        "# Retry report\n\n## Setup\n\nThe soak cluster used a 90 second cap.\n\n"
        "Back to [setup](#setup).\n"
    )
    index = "# Home\n\nRead the [report setup](reports/retry_report.md#setup).\n"
    guide = merged(tmp_path, report, index_md=index)
    home = (tmp_path / "dest/index.md").read_text()
    assert "[report setup](docs/retry-guide.md#setup_1)" in home
    assert "Back to [setup](#setup_1)." in guide
    page = parse_page(GUIDE, guide)
    setup = [s for s in page.sections if s.heading == "Setup"]
    assert [s.anchor for s in setup] == ["setup", "setup_1"]
    assert "The soak cluster used a 90 second cap." in {
        u.key for u in page.units if u.section == page.sections.index(setup[1])
    }


def test_a_linked_heading_is_kept_even_when_its_content_is_already_there(
    tmp_path: Path,
) -> None:
    report = (
        "# Retry report\n\nNew: the soak cluster used a 90 second cap.\n\n## Backoff\n\n"
        "Clients back off exponentially after a failed upload.\n"
    )
    index = "# Home\n\nSee [backoff](reports/retry_report.md#backoff).\n"
    guide = merged(tmp_path, report, index_md=index)
    assert "### Backoff" in guide
    assert "[backoff](docs/retry-guide.md#backoff)" in (tmp_path / "dest/index.md").read_text()


def test_explicit_ids_stay_and_a_taken_one_is_renamed_with_its_links(tmp_path: Path) -> None:
    report = (
        "# Retry report\n\n## Setup {#setup}\n\nThe soak cluster used a 90 second cap.\n\n"
        '<a id="cap"></a>The cap is 90 seconds.\n'
    )
    index = "# Home\n\n[a](reports/retry_report.md#setup) [b](reports/retry_report.md#cap)\n"
    guide = merged(tmp_path, report, index_md=index)
    assert "### Setup {#setup_1}" in guide and '<a id="cap"></a>' in guide
    home = (tmp_path / "dest/index.md").read_text()
    assert "[a](docs/retry-guide.md#setup_1) [b](docs/retry-guide.md#cap)" in home


def test_a_link_that_must_change_but_cannot_be_located_is_refused() -> None:
    page = parse_page("reports/a.md", "# A\n\nSee [b](b.md).\n")
    lost = page.links[0]._replace(column=-1)
    rewriter = LinkRewriter(Plan(redirects={"reports/a.md": "docs/a.md"}), {"reports/b.md"}, set())
    broken = type(page)(**{**{f: getattr(page, f) for f in page.__slots__}, "links": (lost,)})
    with pytest.raises(InputError, match=r"reports/a.md:3: cannot locate"):
        rewriter.rewrite(broken, "docs/a.md")
    assert isinstance(lost, Link)


def test_verify_reports_an_anchor_that_no_longer_resolves(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {
        "a.md": "# A\n\n## Limits\n\nThe cap is 60 s.\n\n"
        "See [b](b.md#start) and [gone](b.md#nowhere).\n",
        "b.md": "# B\n\n## Start\n\nRun the client.\n",
    }
    for path, text in files.items():
        src.mkdir(exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    tree = read_tree(src)
    analysis = analyse(tree)
    out = render(analysis.pages, analysis.plan, tree.all_paths(), set(tree.copied))
    out["b.md"] = out["b.md"].replace("## Start", "## Begin")
    pages = {path: parse_page(path, text) for path, text in out.items()}
    result = verify(analysis.pages, analysis.plan, pages, tree.all_paths(), set(out))
    assert result.newly_broken == [("a.md", "b.md#start")]  # `#nowhere` was broken before
    assert result.broken_before == 1 and result.broken_after == 2


# Link forms that line-based rewriters are reported to miss: link text wrapped onto the
# next line inside a list item (rvben/rumdl#878, benbalter/jekyll-relative-links#61), two
# links on one line (jekyll-relative-links#22), links in indented text and lists
# (tektoncd/website#248), plus destinations with parentheses, angle brackets, escapes and
# entities, badges, table cells with an escaped pipe, and a definition over three lines.
TRICKY = """# T

A [paren](foo(bar).md) and [angle](<my file.md>) and [esc](a\\_b.md) and [ent](a&amp;b.md).

> quoted [q](q.md) and
> second [q2](q.md "title")

1. item [wrapped
   link](i.md)

   !!! note
       inside [n](n.md)

| a | [t](t.md) \\| x | [u](u.md) |
|---|---|---|
| [v](v.md) | w | x |

[![badge](img/b.svg)](b.md)

<img src="img/x.png"><a href='z.md'>z</a>

[ref]:
  r.md
  "Title"
"""


def test_every_link_form_is_rewritten_in_place_and_nothing_else_changes() -> None:
    page = parse_page("reports/p.md", TRICKY)
    names = ["foo(bar).md", "my file.md", "a_b.md", "a&b.md", "q.md", "i.md", "n.md", "t.md"]
    names += ["u.md", "v.md", "img/b.svg", "b.md", "img/x.png", "z.md", "r.md"]
    files = {f"reports/{name}" for name in names} | {"reports/p.md"}
    plan = Plan(redirects={"reports/p.md": "docs/p.md"})
    moved = LinkRewriter(plan, files, set()).rewrite(page, "docs/p.md")
    assert len(page.links) == 16
    expected = (
        TRICKY.replace("](<my file.md>)", "](../reports/my%20file.md)")
        .replace("](a&amp;b.md)", "](../reports/a%26b.md)")
        .replace("](foo(bar).md)", "](../reports/foo%28bar%29.md)")
        .replace("](a\\_b.md)", "](../reports/a_b.md)")
        .replace('src="img/x.png"', 'src="../reports/img/x.png"')
        .replace("href='z.md'", "href='../reports/z.md'")
        .replace("  r.md\n", "  ../reports/r.md\n")
    )
    for name in ["q.md", "i.md", "n.md", "t.md", "u.md", "v.md", "img/b.svg", "b.md"]:
        expected = expected.replace(f"]({name}", f"](../reports/{name}")
    assert moved == expected
