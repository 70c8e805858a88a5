"""Bearer tokens: parsing the header and comparing in constant time."""

from __future__ import annotations

import pytest

from reference_server.auth import bearer_token, tokens_equal

pytestmark = pytest.mark.unit


def test_the_bearer_scheme_is_matched_case_insensitively() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bEaReR abc") == "abc"


def test_any_other_scheme_or_no_header_gives_no_token() -> None:
    assert bearer_token("Basic abc") == ""
    assert bearer_token("") == ""
    assert bearer_token("Bearer") == ""


def test_tokens_equal_compares_whole_tokens() -> None:
    assert tokens_equal("s3cret", "s3cret")
    assert not tokens_equal("s3cre", "s3cret")
    assert not tokens_equal("", "s3cret")


def test_a_token_holding_a_lone_surrogate_does_not_match_and_does_not_raise() -> None:
    assert not tokens_equal("s3cret\ud800", "s3cret")
    assert not tokens_equal("\udcff", "\udcfe")
