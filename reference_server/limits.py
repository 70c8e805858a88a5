"""Runtime limit changes and the connections listing's paging, as pure functions.

`parse_changes(body, current)` turns the body of `PATCH /api/dashboard/websocket/limits`
into the new `Settings` and what changed; the values are checked by `Settings` itself
(`dataclasses.replace` runs its `__post_init__`), so a runtime change and a start-up
setting have one validator. `parse_page(limit, cursor, page_max)` checks the query of
`GET /api/dashboard/websocket/connections`. Both raise `LimitsError` (HTTP 400) naming the
bad key. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import LimitsError, SettingsError
from .messages import ECHO_CHARS, is_ascii_digits
from .settings import SETTING_DOCS, Settings

__all__ = ["CURSOR_MAX_DIGITS", "RUNTIME_LIMITS", "Change", "parse_changes", "parse_page", "schema"]

RUNTIME_LIMITS: dict[str, type] = {
    "rate_tokens_per_sec": float,
    "rate_burst": float,
    "send_queue_max_messages": int,
    "send_queue_max_bytes": int,
    "idle_disconnect_seconds": float,
}
"""The settings a running instance may change, with the JSON type each takes (a float
setting takes integers too)."""

CURSOR_MAX_DIGITS = 18
"""Longest cursor accepted, in digits: 18 stay below 2**63, an integer in every language."""

Change = tuple[float | int, float | int]
"""One setting's (old, new) values, each of the setting's own type (int or float)."""

_NUMBER_MAX_DIGITS = 100
"""Longest JSON number literal read in a PATCH body, in characters: every limit fits in far
fewer, and `int()` of a long one is quadratic (CPython refuses past 4300 digits)."""


class _TooLong:
    """A number literal longer than `_NUMBER_MAX_DIGITS`, kept so its key can be named."""

    def __init__(self, literal: str) -> None:
        self.length = len(literal)


def _number(kind: type) -> Any:
    def parse(literal: str) -> object:
        return _TooLong(literal) if len(literal) > _NUMBER_MAX_DIGITS else kind(literal)

    return parse


def _refuse(key: str, message: str) -> LimitsError:
    return LimitsError(message, key=key)


def _echo(key: str) -> str:
    # ascii(): a key may hold lone surrogates, which a UTF-8 JSON response cannot carry.
    return ascii(key[:ECHO_CHARS])


def _named(key: str) -> str:
    """`key` shortened, with what UTF-8 cannot carry (lone surrogates) as `\\uXXXX`."""
    return key[:ECHO_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _refuse(_named(key), f"{_echo(key)} appears twice in the body")
        seen[key] = value
    return seen


def _typed(key: str, value: Any) -> float | int:
    kind = RUNTIME_LIMITS[key]
    if isinstance(value, _TooLong):
        raise _refuse(
            key, f"{key} is out of range: a number of {value.length} characters is not read"
        )
    # bool is an int in Python; `true` is no number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = json.dumps(value) if not isinstance(value, str) else ascii(value)
        shown = shown[: ECHO_CHARS + 2]
        raise _refuse(key, f"{key} must be a number, got {shown}")
    if kind is int:
        if isinstance(value, float):
            raise _refuse(key, f"{key} must be an integer, got {value}")
        return value
    try:
        return float(value)
    except OverflowError:  # an integer beyond a float's range
        raise _refuse(key, f"{key} must be a finite number") from None


def parse_changes(body: bytes, current: Settings) -> tuple[Settings, dict[str, Change]]:
    """Validate a limits PATCH body against the settings in force.

    Args:
        body: the request body: a JSON object of one or more `RUNTIME_LIMITS` keys with
            their new values, in the settings' units (tokens/s, tokens, messages, bytes, s).
        current: the settings in force.

    Returns:
        The new settings (`current` with the values replaced and validated again), and
        each key whose value differs, with its (old, new) values in force (an integer
        setting's as int, a float setting's as float); empty when nothing differs.

    Raises:
        LimitsError: an empty or non-JSON body, a body that is not an object, an empty
            object, a key listed twice, an unknown key or one that cannot change at run
            time, a value of the wrong type or out of range. Its `key` names the bad key
            (empty when the body as a whole is wrong).
    """
    if not body.strip():
        raise _refuse("", "The body is empty: send a JSON object of the limits to change")
    try:
        data = json.loads(
            body,
            object_pairs_hook=_no_duplicates,
            parse_int=_number(int),
            parse_float=_number(float),
        )
    except (ValueError, RecursionError):  # LimitsError (a key twice) is neither
        raise _refuse("", "The body is not valid JSON text") from None
    if not isinstance(data, dict):
        raise _refuse("", "The body must be a JSON object of the limits to change")
    if not data:
        raise _refuse("", "Nothing to change: name one or more of " + ", ".join(RUNTIME_LIMITS))
    values: dict[str, float | int] = {}
    for key, value in data.items():
        if key not in RUNTIME_LIMITS:
            why = "cannot change at run time" if key in SETTING_DOCS else "is not a setting"
            raise _refuse(
                _named(key), f"{_echo(key)} {why}; changeable: " + ", ".join(RUNTIME_LIMITS)
            )
        values[key] = _typed(key, value)
    for key, value in values.items():
        # One key at a time first, so the error names the key that is out of range.
        try:
            current.replace(**{key: value})
        except SettingsError as exc:
            raise _refuse(key, str(exc).replace(Settings.env_name(key), key, 1)) from None
    new = current.replace(**values)
    # The values in force, of each setting's own type: a float() here once turned
    # 9007199254740993 into 9007199254740992.0.
    changed: dict[str, Change] = {
        key: (getattr(current, key), getattr(new, key))
        for key in values
        if getattr(current, key) != getattr(new, key)
    }
    return new, changed


def parse_page(limit: str | None, cursor: str | None, page_max: int) -> tuple[int, int]:
    """Validate the connections listing's query.

    Args:
        limit: the `limit` query (connections per page), or None for `page_max`.
        cursor: the `cursor` query (the `next_cursor` of the previous page), or None for
            the first page.
        page_max: the largest page (`connections_page_max`).

    Returns:
        `(limit, after)`: the page size, and the accept number after which the page starts
        (0 for the first page).

    Raises:
        LimitsError: `limit` is not an integer from 1 to `page_max`, or `cursor` is not one
            this server hands out; its `key` names the parameter.
    """
    size = page_max
    if limit is not None:
        if (
            not is_ascii_digits(limit)
            or len(limit) > CURSOR_MAX_DIGITS
            or not 1 <= int(limit) <= page_max
        ):
            raise _refuse("limit", f"limit must be an integer from 1 to {page_max}")
        size = int(limit)
    after = 0
    if cursor is not None:
        if not is_ascii_digits(cursor) or len(cursor) > CURSOR_MAX_DIGITS:
            raise _refuse("cursor", "cursor must be the next_cursor of a previous page")
        after = int(cursor)
    return size, after


def schema(docs: Mapping[str, tuple[str, str]] = SETTING_DOCS) -> dict[str, Any]:
    """The JSON Schema of a limits PATCH body, for the OpenAPI document.

    Only the types are stated: the ranges are `Settings`' own, checked by `parse_changes`.
    """
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            key: {
                "type": "integer" if kind is int else "number",
                "description": f"{docs[key][1]} Unit: {docs[key][0]}.",
            }
            for key, kind in RUNTIME_LIMITS.items()
        },
    }
