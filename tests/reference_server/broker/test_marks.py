"""Names of producer messages: the same on every instance that heard the same marker."""

from __future__ import annotations

import pytest

from reference_server.broker.marks import MAX_MARK_CHARS, Marks

pytestmark = pytest.mark.unit


def hear(marks: Marks, stream: list[str]) -> list[str | None]:
    """Feed `stream` ("M<text>" for a marker, anything else a producer message) in order."""
    names = []
    for item in stream:
        if item.startswith("M"):
            marks.mark(item[1:])
        else:
            names.append(marks.name())
    return names


def test_messages_are_named_by_the_last_marker_and_their_place_after_it() -> None:
    assert hear(Marks(), ["Mx.1", "a", "a", "b", "Mx.2", "a"]) == [
        "x.1:1",
        "x.1:2",
        "x.1:3",
        "x.2:1",
    ]


def test_two_instances_that_heard_the_same_marker_agree_on_every_later_name() -> None:
    stream = ["p", "Mx.1", "p", "q", "My.1", "p", "p", "Mx.2", "q"]
    early, late = Marks(), Marks()
    # The late instance subscribed after the first message and the first marker.
    first = hear(early, stream)
    second = hear(late, stream[2:])
    assert first[0] is None  # before any marker: left to instances that can name it
    assert second[:2] == [None, None]
    assert first[3:] == second[2:] == ["y.1:1", "y.1:2", "x.2:1"]


def test_identical_payloads_get_different_names() -> None:
    marks = Marks()
    marks.mark("x.1")
    assert marks.name() != marks.name()


def test_an_overlong_marker_is_ignored_by_everyone_alike() -> None:
    marks = Marks()
    marks.mark("x.1")
    marks.mark("y" * (MAX_MARK_CHARS + 1))
    assert marks.name() == "x.1:1"
