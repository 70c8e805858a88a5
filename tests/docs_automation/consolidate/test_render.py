"""Merged pages keep their containers whole (docs_automation.consolidate.render).

A report about retries is merged into the live retry guide; each test gives the report one
kind of container that Python-Markdown (the site engine, with our `mkdocs.yml` extensions)
reads as one block, and checks that the guide gets it whole, exactly as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docs_automation.consolidate.corpus import parse_page
from docs_automation.consolidate.engine import analyse, apply
from docs_automation.consolidate.files import read_tree

pytestmark = pytest.mark.unit  # small trees in a temp folder; no sockets

GUIDE_TEXT = "# Retry guide\n\nClients back off exponentially after a failed upload.\n"


def guide_after_merging(tmp_path: Path, body: str) -> str:
    src = tmp_path / "src"
    for path, text in {
        "docs/retry-guide.md": GUIDE_TEXT,
        "reports/retry_report.md": "# Retry report\n\n" + body,
    }.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    analysis = analyse(read_tree(src))
    assert analysis.plan.final("reports/retry_report.md") == "docs/retry-guide.md"
    apply(analysis, tmp_path / "dest")
    return (tmp_path / "dest/docs/retry-guide.md").read_text(encoding="utf-8")


ADMONITION = (
    '!!! warning "Keep the cap above one minute"\n\n'
    "    Shorter caps make 400 clients retry in lockstep.\n\n"
    "    - measured on staging\n"
)
TABS = (
    '=== "Python"\n\n    ```python\n    client.retry(cap=60)\n    ```\n\n'
    '=== "Shell"\n\n    Run `retry --cap 60` before the upload.\n'
)
DETAILS = (
    "<details>\n<summary>Raw soak numbers</summary>\n\n"
    "Errors fell from 12 to 0 in the second hour.\n\n</details>\n"
)
LIST_ITEM = (
    "- Start the soak run:\n\n  ```bash\n  soak --hours 2\n  ```\n\n"
    "  Then read the error count.\n\n- Stop it after two hours\n"
)
FOOTNOTE = (
    "Jitter removed the lockstep.[^jitter]\n\n"
    "[^jitter]: Full jitter, as in the AWS architecture blog.\n\n"
    "    The second paragraph of the note.\n"
)


@pytest.mark.parametrize(
    "container",
    [ADMONITION, TABS, DETAILS, LIST_ITEM, FOOTNOTE],
    ids=["admonition", "content-tabs", "details", "list-item-with-blocks", "footnote"],
)
def test_a_container_moves_whole_and_exactly_as_written(tmp_path: Path, container: str) -> None:
    guide = guide_after_merging(tmp_path, container + "\nThe soak run lasted two hours.\n")
    assert container.rstrip("\n") in guide
    # What follows the container is outside it, not folded into it.
    assert "\n\nThe soak run lasted two hours." in guide


def test_an_admonition_body_is_read_as_markdown_not_as_code() -> None:
    page = parse_page("p.md", "# P\n\n" + ADMONITION)
    assert [u.kind for u in page.units] == ["paragraph", "paragraph", "item"]
    assert len({u.block for u in page.units}) == 1  # one container, one block


def test_details_left_open_over_several_blocks_is_one_block() -> None:
    page = parse_page("p.md", DETAILS + "\nAfter the details.\n")
    blocks = [u.block for u in page.units]
    assert blocks[:-1] == [blocks[0]] * (len(blocks) - 1) and blocks[-1] != blocks[0]


def test_a_container_already_on_the_target_is_not_repeated(tmp_path: Path) -> None:
    guide_text = GUIDE_TEXT + "\n" + ADMONITION
    src = tmp_path / "src"
    for path, text in {
        "docs/retry-guide.md": guide_text,
        "reports/retry_report.md": "# Retry report\n\n" + ADMONITION + "\nNew: the cap is 60 s.\n",
    }.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    apply(analyse(read_tree(src)), tmp_path / "dest")
    guide = (tmp_path / "dest/docs/retry-guide.md").read_text(encoding="utf-8")
    assert guide.count("!!! warning") == 1 and "New: the cap is 60 s." in guide
