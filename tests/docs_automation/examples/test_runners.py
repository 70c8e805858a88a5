"""The runners' pure parts: port rewriting, background ports, console sessions."""

from __future__ import annotations

import pytest

from docs_automation.examples.runners import (
    background_ports,
    console_pairs,
    output_matches,
    rewrite,
)

pytestmark = pytest.mark.unit


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
