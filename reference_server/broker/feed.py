"""One instance's ordered copy of every subscription: what it delivered, and its history.

Pure: the Redis broker feeds it the entries it reads, in stream order, and delivers what it
returns. `Feed` makes sure that what reaches the hub has no duplicate and no silent gap:

- an entry already delivered (a re-read after a reconnect) is dropped;
- an entry past a gap (this instance lagged behind the stream's trimming) is preceded by a
  `resync_required` notice, and the history restarts at it, so a resume can never be
  answered across the hole;
- a new epoch (Redis lost its data and numbering restarted above every earlier seq) sends
  every subscriber a `resync_required` notice and empties the history.

The history kept here is the instance's own: every instance reads every update, so a client
that disconnects from one instance can resume on another, and a resume works while Redis is
unreachable.
"""

from __future__ import annotations

from .. import messages
from ..messages import IdFactory
from .base import History, Update
from .retained import Retained

__all__ = ["Feed", "resync_notice"]


def resync_notice(
    subscription: str, last_seq: int, history: History, wall: float, correlation_id: str
) -> Update:
    """A `resync_required` frame for every subscriber of `subscription`, shaped as an update.

    It travels the path updates take (the hub puts it in each subscriber's queue), so it
    arrives in order between the last update before the hole and the first one after it.
    Its `seq` is `history.latest_seq`: live updates continue after it. `correlation_id`
    is a fresh id (the notice answers no client frame).
    """
    body = messages.frame(
        "resync_required",
        correlation_id=correlation_id,
        wall=wall,
        subscription=subscription,
        last_seq=last_seq,
        oldest_seq=history.oldest_seq,
        latest_seq=history.latest_seq,
    )
    return Update(
        subscription,
        "resync_required",
        history.latest_seq,
        {},
        body["correlation_id"],
        wall,
        messages.encode(body),
    )


class Feed:
    """Per-subscription order, gap detection and bounded history of one instance.

    Args:
        history_max_messages: updates kept per subscription.
        history_max_age_seconds: oldest update kept, in seconds.
        new_id: makes the correlation id of each `resync_required` notice.
    """

    def __init__(
        self, *, history_max_messages: int, history_max_age_seconds: float, new_id: IdFactory
    ) -> None:
        self._retained = Retained(
            max_messages=history_max_messages, max_age_seconds=history_max_age_seconds
        )
        self._new_id = new_id
        self.epoch: int | None = None
        """The epoch's base seq (its seqs are base + 1, base + 2, ...); None before the first."""
        self._last: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, 0)
        # The correlation id of the update at `_last`, so that a link can tell whether Redis
        # still holds that update under that seq (after a failover it may not).
        self._last_id: dict[str, str] = {}

    def highest_seq(self) -> int:
        """The highest seq this instance has delivered on any subscription (0 for none)."""
        return max(self._last.values())

    def last_seq(self, subscription: str) -> int:
        """The last seq delivered on `subscription` (the epoch's base when none yet)."""
        return self._last[subscription]

    def last_correlation_id(self, subscription: str) -> str | None:
        """The correlation id of the last update delivered on `subscription` (None if none)."""
        return self._last_id.get(subscription)

    def begin_epoch(self, epoch: int, wall: float) -> list[Update]:
        """Switch to `epoch`; return the notices to deliver (none when it is the same one).

        After the switch, the next seq expected on every subscription is `epoch + 1`.
        """
        if epoch == self.epoch:
            return []
        had_epoch = self.epoch is not None
        self.epoch = epoch
        self._last_id.clear()
        notices = []
        for sub in messages.SUBSCRIPTIONS:
            self._retained.clear(sub)
            before = self._last[sub]
            self._last[sub] = epoch
            if had_epoch:
                notices.append(self._notice(sub, before, wall))
        return notices

    def accept(self, update: Update) -> list[Update]:
        """Take the next update read from the stream; return what to deliver, in order."""
        sub = update.subscription
        last = self._last[sub]
        if update.seq <= last:
            return []
        out = []
        if update.seq > last + 1:
            self._retained.clear(sub)
            self._last[sub] = update.seq - 1
            out.append(self._notice(sub, last, update.published_at))
        self._retained.append(update)
        self._last[sub] = update.seq
        self._last_id[sub] = update.correlation_id
        out.append(update)
        return out

    def history(self, subscription: str, after_seq: int, now: float) -> History:
        """The kept updates of `subscription` after `after_seq`, dropping those too old.

        Args:
            subscription: a subscription name.
            after_seq: the last seq the client saw.
            now: wall-clock seconds since the epoch (ages are measured against it).
        """
        self._retained.expire(subscription, now)
        return self._retained.history(subscription, after_seq, self._last[subscription])

    def _notice(self, subscription: str, last_seq: int, wall: float) -> Update:
        history = self._retained.history(subscription, last_seq, self._last[subscription])
        return resync_notice(subscription, last_seq, history, wall, self._new_id())
