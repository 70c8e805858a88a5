"""Bearer tokens: parsing the header and comparing in constant time."""

from __future__ import annotations

import pytest

from reference_server.auth import admin_refusal, bearer_token, tokens_equal

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


def test_the_admin_token_passes_the_admin_routes() -> None:
    assert admin_refusal("Bearer adm", admin_token="adm", client_token="cli") is None


def test_the_client_token_is_forbidden_on_the_admin_routes() -> None:
    assert admin_refusal("Bearer cli", admin_token="adm", client_token="cli") == 403


def test_a_missing_or_unknown_token_is_unauthorized() -> None:
    assert admin_refusal("", admin_token="adm", client_token="cli") == 401
    assert admin_refusal("Bearer nope", admin_token="adm", client_token="cli") == 401
    assert admin_refusal("Bearer ", admin_token="adm", client_token="") == 401


def test_without_an_admin_token_the_admin_routes_are_off_for_everyone() -> None:
    assert admin_refusal("", admin_token="", client_token="") == 403
    assert admin_refusal("Bearer cli", admin_token="", client_token="cli") == 403
