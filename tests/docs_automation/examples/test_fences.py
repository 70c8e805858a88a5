"""Finding, classifying and tallying the docs' fences, without running anything."""

from __future__ import annotations

import pytest

from docs_automation.examples.fences import (
    EXECUTED,
    ILLUSTRATIVE,
    UNCLASSIFIED,
    VALIDATED,
    classify,
    outcome,
    scan,
    tally,
)

pytestmark = pytest.mark.unit

PAGE = """# Title

!!! tip
    ```py
    print(1)
    ```

<!-- illustrative: shows a shape, not a program -->
```text
anything
```

````markdown
```json
{}
```
````
"""


def test_scan_finds_fences_inside_admonitions_and_keeps_nesting() -> None:
    fences = scan("p.md", PAGE)
    assert [(f.line, f.lang, f.indent) for f in fences] == [
        (4, "py", 4),
        (9, "text", 0),
        (13, "markdown", 0),
    ]
    assert fences[0].body == "print(1)\n"
    assert PAGE[fences[0].start : fences[0].end] == "    print(1)\n"
    assert fences[1].directive == ("illustrative", "shows a shape, not a program")


def test_classify_places_each_kind() -> None:
    kinds = [classify(f) for f in scan("p.md", PAGE)]
    assert kinds == ["python", ILLUSTRATIVE, "markdown"]
    assert [outcome(k) for k in kinds] == [EXECUTED, ILLUSTRATIVE, VALIDATED]
    assert outcome(classify(scan("p.md", "```text\nx\n```\n")[0])) == UNCLASSIFIED
    assert (
        outcome(classify(scan("p.md", "<!-- illustrative: -->\n```text\nx\n```\n")[0]))
        == UNCLASSIFIED
    )
    assert tally(scan("p.md", PAGE))[("py", EXECUTED)] == 1


def test_a_prerequisites_block_is_executed_when_it_is_shell() -> None:
    page = "<!-- example: prerequisites -->\n```bash\ntest -d .venv\n```\n"
    fence = scan("p.md", page)[0]
    assert classify(fence) == "prerequisites"
    assert outcome(classify(fence)) == EXECUTED


def test_an_example_directive_on_the_wrong_block_is_unclassified() -> None:
    on_python = "<!-- example: prerequisites -->\n```py\nprint(1)\n```\n"
    unknown = "<!-- example: setup -->\n```bash\ntrue\n```\n"
    assert classify(scan("p.md", on_python)[0]) is None
    assert classify(scan("p.md", unknown)[0]) is None


def test_a_yaml_block_including_the_deploy_prometheus_files_is_prometheus_config() -> None:
    included = scan("p.md", '```yaml\n--8<-- "deploy/prometheus/rules.yml"\n```\n')[0]
    assert included.included == ("deploy/prometheus/rules.yml",)
    assert classify(included) == "prometheus"
    elsewhere = scan("p.md", '```yaml\n--8<-- "docs/examples/other.yml"\n```\n')[0]
    assert classify(elsewhere) is None
