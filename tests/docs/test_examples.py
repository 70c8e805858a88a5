"""Every fenced block under docs/ is executed, validated or marked illustrative with a reason.

Python blocks run through pytest-examples (their `#>` output is checked, and refreshed with
`--update-examples`); every other block goes through the harness. Test ids are
`page.md:line`.
"""

from __future__ import annotations

import json

import pytest
from pytest_examples import CodeExample, EvalExample

from docs_automation.examples.fences import (
    ILLUSTRATIVE,
    MARKED_SHARE_MAX,
    UNCLASSIFIED,
    Fence,
    classify,
    outcome,
    tally,
)
from docs_automation.examples.harness import NEWCOMER_TIMEOUT_SECONDS, Harness, docs_fences
from docs_automation.examples.runners import rewrite
from tests.docs.summary import NEWCOMER_REPORT
from tests.procs import ROOT

pytestmark = pytest.mark.docs

FENCES = docs_fences(ROOT)


def _params(kinds: set[str], *, include: bool) -> list[object]:
    params = []
    for fence in FENCES:
        kind = classify(fence)
        if (kind in kinds) != include:
            continue
        marks = [pytest.mark.xdist_group(f"docs:{fence.page}")]
        if kind == "newcomer":
            # A fresh venv and `pip install` on a loaded 2-core machine can pass 120 s.
            marks += [pytest.mark.slow, pytest.mark.timeout(NEWCOMER_TIMEOUT_SECONDS)]
        if kind == "mermaid":
            marks.append(pytest.mark.browser)
        params.append(pytest.param(fence, id=fence.id, marks=marks))
    return params


@pytest.mark.parametrize("fence", _params({"python"}, include=True))
def test_python_example_prints_what_the_page_shows(
    fence: Fence, harness: Harness, eval_example: EvalExample
) -> None:
    scope = harness.scope(fence.page)
    if fence.included:
        path = ROOT / fence.included[0]
        source = fence.source(ROOT)
        start, end = 0, len(source)
    else:
        path, source, start, end = ROOT / "docs" / fence.page, fence.body, fence.start, fence.end
    example = CodeExample(
        source=rewrite(source, scope.ports),
        path=path,
        start_line=fence.line,
        end_line=fence.line + source.count("\n") + 1,
        start_index=start,
        end_index=end,
        prefix=fence.info,
        indent=fence.indent,
    )
    eval_example.set_config(line_length=88, ruff_ignore=["D", "T201"])
    eval_example.lint_ruff(example)
    if eval_example.update_examples:
        eval_example.run_print_update(example)
        # What goes back into the page is the reader's address, not the test server's.
        example.source = rewrite(example.source, {v: k for k, v in scope.ports.items()})
    else:
        eval_example.run_print_check(example)


@pytest.mark.parametrize("fence", _params({"python"}, include=False))
def test_block_is_executed_validated_or_marked(fence: Fence, harness: Harness) -> None:
    summary = harness.check(fence)
    assert summary
    if classify(fence) == "newcomer" and harness.newcomer_seconds is not None:
        NEWCOMER_REPORT.parent.mkdir(exist_ok=True)
        NEWCOMER_REPORT.write_text(
            json.dumps(
                {
                    "page": fence.page,
                    "seconds": harness.newcomer_seconds,
                    "steps": harness.newcomer_steps,
                }
            )
        )


def test_no_block_is_unclassified_and_few_are_marked() -> None:
    assert FENCES, "no fenced blocks found under docs/"
    unclassified = [f.id for f in FENCES if classify(f) is None]
    assert not unclassified, f"blocks neither run, validated nor marked: {unclassified}"
    counts = tally(FENCES)
    marked = sum(n for (_, result), n in counts.items() if result == ILLUSTRATIVE)
    assert marked / len(FENCES) < MARKED_SHARE_MAX, (
        f"{marked} of {len(FENCES)} blocks are marked illustrative"
    )


@pytest.mark.unit
def test_an_unknown_language_is_unclassified() -> None:
    fence = Fence("p.md", 1, "text", "text", "hello\n", 0, 0, 6)
    assert outcome(classify(fence)) == UNCLASSIFIED
