"""The bounded history of every subscription that a broker keeps for resumes.

Both brokers keep one: `MemoryBroker` of what it published, the Redis broker's `Feed` of
what this instance read. Each subscription keeps at most `max_messages` updates (the
oldest go first) and none older than `max_age_seconds`. Pure: the caller passes the time.
"""

from __future__ import annotations

from collections import deque

from .. import messages
from .base import History, Update

__all__ = ["Retained"]


class Retained:
    """The last updates of every subscription, bounded in count and in age.

    Args:
        max_messages: updates kept per subscription (`history_max_messages`).
        max_age_seconds: oldest update kept, in seconds (`history_max_age_seconds`).
    """

    def __init__(self, *, max_messages: int, max_age_seconds: float) -> None:
        self._max_age = max_age_seconds
        self._kept: dict[str, deque[Update]] = {
            s: deque(maxlen=max_messages) for s in messages.SUBSCRIPTIONS
        }

    def append(self, update: Update) -> None:
        """Keep `update` (the newest of its subscription), dropping the oldest when full."""
        self._kept[update.subscription].append(update)

    def clear(self, subscription: str) -> None:
        """Forget everything kept of `subscription` (its numbering has a hole or restarted)."""
        self._kept[subscription].clear()

    def expire(self, subscription: str, now: float) -> None:
        """Drop the updates of `subscription` published before `now - max_age_seconds`.

        Args:
            subscription: a subscription name.
            now: wall-clock seconds since the epoch.
        """
        kept = self._kept[subscription]
        cutoff = now - self._max_age
        while kept and kept[0].published_at < cutoff:
            kept.popleft()

    def history(self, subscription: str, after_seq: int, latest_seq: int) -> History:
        """What is kept of `subscription` after `after_seq`, for a resume.

        Args:
            subscription: a subscription name.
            after_seq: the last seq the client saw.
            latest_seq: the newest seq published on `subscription`; it is the oldest seq
                minus one when nothing is kept.
        """
        kept = self._kept[subscription]
        oldest = kept[0].seq if kept else latest_seq + 1
        return History([u for u in kept if u.seq > after_seq], oldest, latest_seq)
