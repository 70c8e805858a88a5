"""The instance's ordered copy of each subscription: order, gaps, epochs, history."""

from __future__ import annotations

import json

import pytest

from reference_server.app import new_uuid
from reference_server.broker.base import Update, make_update
from reference_server.broker.feed import Feed
from tests.wsclient import check_server_frame

pytestmark = pytest.mark.unit

EPOCH = 1_795_000_000_000_000
WALL = 1_795_000_000.0


def update(n: int, sub: str = "agents", wall: float = WALL) -> Update:
    return make_update(sub, "agent_update", {"n": n}, seq=EPOCH + n, correlation_id="c", wall=wall)


def fresh(history: int = 10, age: float = 60.0) -> Feed:
    feed = Feed(history_max_messages=history, history_max_age_seconds=age, new_id=new_uuid)
    assert feed.begin_epoch(EPOCH, WALL) == []  # the first epoch has nobody to tell
    return feed


def test_updates_in_order_are_delivered_once_and_kept() -> None:
    feed = fresh()
    out = [u for n in (1, 2, 3, 2) for u in feed.accept(update(n))]
    assert [u.seq - EPOCH for u in out] == [1, 2, 3]  # the re-read 2 is dropped
    history = feed.history("agents", EPOCH + 1, WALL)
    assert [u.seq - EPOCH for u in history.updates] == [2, 3]
    assert (history.oldest_seq, history.latest_seq) == (EPOCH + 1, EPOCH + 3)
    assert history.covers(EPOCH + 1)


def test_a_gap_is_announced_before_the_update_after_it_and_restarts_the_history() -> None:
    feed = fresh()
    feed.accept(update(1))
    notice, after = feed.accept(update(5))
    frame = json.loads(notice.text)
    check_server_frame(frame)
    assert frame["type"] == "resync_required"
    assert (frame["last_seq"], frame["oldest_seq"], frame["latest_seq"]) == (
        EPOCH + 1,
        EPOCH + 5,
        EPOCH + 4,
    )
    assert after.seq == EPOCH + 5
    history = feed.history("agents", EPOCH + 1, WALL)
    assert not history.covers(EPOCH + 1)  # 2..4 are gone: a resume from 1 must resync
    assert history.covers(EPOCH + 4)


def test_a_new_epoch_tells_every_subscription_and_forgets_the_old_numbering() -> None:
    feed = fresh()
    feed.accept(update(7))
    new = EPOCH + 10_000_000
    notices = feed.begin_epoch(new, WALL)
    assert sorted(n.subscription for n in notices) == sorted(
        ["agents", "coordination", "tasks", "system", "alerts", "project_index"]
    )
    agents = json.loads(next(n for n in notices if n.subscription == "agents").text)
    check_server_frame(agents)
    assert (agents["last_seq"], agents["latest_seq"]) == (EPOCH + 7, new)
    assert feed.begin_epoch(new, WALL) == []  # the same epoch again changes nothing
    assert not feed.history("agents", EPOCH + 7, WALL).covers(EPOCH + 7)
    assert feed.history("agents", new, WALL).covers(new)
    first = make_update("agents", "agent_update", {}, seq=new + 1, correlation_id="c", wall=WALL)
    assert feed.accept(first) == [first]  # no gap notice: new + 1 follows the epoch's base
    assert feed.highest_seq() == new + 1


def test_history_is_bounded_by_count_and_age() -> None:
    feed = fresh(history=3, age=10.0)
    for n in range(1, 6):
        feed.accept(update(n, wall=WALL + n))
    assert [u.seq - EPOCH for u in feed.history("agents", EPOCH, WALL + 5).updates] == [3, 4, 5]
    aged = feed.history("agents", EPOCH, WALL + 14.5)  # 3 and 4 are older than 10 s now
    assert [u.seq - EPOCH for u in aged.updates] == [5]
    assert aged.oldest_seq == EPOCH + 5


def test_before_any_epoch_nothing_is_covered_but_a_fresh_start() -> None:
    feed = Feed(history_max_messages=5, history_max_age_seconds=5.0, new_id=new_uuid)
    history = feed.history("tasks", 3, WALL)
    assert (history.oldest_seq, history.latest_seq) == (1, 0)
    assert history.covers(0) and not history.covers(3)


def test_the_last_delivered_correlation_id_is_kept_per_subscription_until_a_new_epoch() -> None:
    feed = fresh()
    assert feed.last_correlation_id("agents") is None
    for n, cid in ((1, "first"), (2, "second"), (2, "re-read")):
        feed.accept(
            make_update("agents", "agent_update", {}, seq=EPOCH + n, correlation_id=cid, wall=WALL)
        )
    # The re-read entry was dropped: the id stays that of the update delivered under seq 2.
    assert feed.last_correlation_id("agents") == "second"
    assert feed.last_correlation_id("system") is None
    feed.begin_epoch(EPOCH + 1_000, WALL)
    assert feed.last_correlation_id("agents") is None
