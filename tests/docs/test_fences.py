"""Finding and classifying fences, matching console output, and the data-block validators."""

from __future__ import annotations

import pytest

from docs_automation.errors import BlockError
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
from docs_automation.examples.runners import (
    background_ports,
    console_pairs,
    output_matches,
    rewrite,
)
from docs_automation.examples.validators import check_frame, check_prometheus, check_settings

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


def test_rewrite_moves_only_addresses() -> None:
    text = "curl 127.0.0.1:8000/x --port 8010 -p 6390 limit 8000"
    assert (
        rewrite(text, {8000: 1, 8010: 2, 6390: 3}) == "curl 127.0.0.1:1/x --port 2 -p 3 limit 8000"
    )


def test_background_ports_come_from_commands_ending_in_ampersand() -> None:
    body = "redis-server --port 6390 &\npython -m reference_server &\ncurl 127.0.0.1:8021 && true\n"
    assert background_ports(body) == {6390, 8000}


def test_console_output_matches_with_ellipsis() -> None:
    pairs = console_pairs("$ echo a \\\n  b\nline one\n$ true\n")
    assert pairs == [("echo a \\\n  b", "line one"), ("true", "")]
    assert output_matches('{"status":"healthy",...}', '{"status":"healthy","x":1}\n')
    assert not output_matches('{"status":"healthy",...}', '{"status":"degraded"}')
    assert output_matches("", "whatever")


def test_frames_are_checked_against_the_schema() -> None:
    assert check_frame('{"type": "ping", "correlation_id": "c-1"}') == "ping"
    with pytest.raises(BlockError):
        check_frame('{"type": "subscribe", "subscriptions": "agents"}')


def test_settings_snippets_must_name_real_settings() -> None:
    assert check_settings("WS_RATE_BURST=10\n# comment\nexport WS_PORT=9000").rate_burst == 10
    with pytest.raises(BlockError, match="not a setting"):
        check_settings("WS_RATE_BRUST=10")
    with pytest.raises(BlockError, match="refuse"):
        check_settings("WS_AUTH_REQUIRED=true")


def test_prometheus_rules_must_name_exported_metrics() -> None:
    rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x_total > 1\n"
    with pytest.raises(BlockError, match="no metric"):
        check_prometheus(rules.replace("x_total", "leanvibe_ws_nope_total"), {"leanvibe_ws_up"})
    assert (
        check_prometheus(rules.replace("x_total", "leanvibe_ws_up_total"), {"leanvibe_ws_up"}) == 1
    )
