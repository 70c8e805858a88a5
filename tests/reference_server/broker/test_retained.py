"""The bounded history both brokers keep: count and age bounds, and what a resume sees."""

from __future__ import annotations

import pytest

from reference_server.broker.base import Update, make_update
from reference_server.broker.retained import Retained

pytestmark = pytest.mark.unit

WALL = 1_795_000_000.0


def update(seq: int, wall: float = WALL, subscription: str = "tasks") -> Update:
    return make_update(subscription, "task_update", {}, seq=seq, correlation_id="c", wall=wall)


def test_only_the_newest_max_messages_are_kept() -> None:
    kept = Retained(max_messages=2, max_age_seconds=60.0)
    for seq in (1, 2, 3):
        kept.append(update(seq))
    history = kept.history("tasks", 0, latest_seq=3)
    assert [u.seq for u in history.updates] == [2, 3]
    assert (history.oldest_seq, history.latest_seq) == (2, 3)
    assert not history.covers(0) and history.covers(1)


def test_expire_drops_updates_older_than_the_max_age() -> None:
    kept = Retained(max_messages=10, max_age_seconds=5.0)
    kept.append(update(1, WALL))
    kept.append(update(2, WALL + 4))
    kept.expire("tasks", WALL + 6)
    assert [u.seq for u in kept.history("tasks", 0, latest_seq=2).updates] == [2]


def test_an_empty_history_starts_after_the_latest_seq() -> None:
    kept = Retained(max_messages=10, max_age_seconds=5.0)
    kept.append(update(4))
    kept.clear("tasks")
    history = kept.history("tasks", 2, latest_seq=9)
    assert (history.updates, history.oldest_seq, history.latest_seq) == ([], 10, 9)


def test_subscriptions_are_kept_apart() -> None:
    kept = Retained(max_messages=1, max_age_seconds=5.0)
    kept.append(update(1, subscription="agents"))
    kept.append(update(1, subscription="tasks"))
    assert len(kept.history("agents", 0, latest_seq=1).updates) == 1
