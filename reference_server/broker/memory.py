"""The in-process broker: one instance, no external service (the default)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import messages
from .base import BrokerStatus, Deliver, History, Update, make_update
from .retained import Retained

__all__ = ["MemoryBroker"]

# Seqs are counted from the start time in microseconds since the epoch.
_MICROSECONDS = 1_000_000


class MemoryBroker:
    """The in-process broker: one instance, no external service.

    A product feature, not a test double: a single instance needs nothing else.

    Args:
        history_max_messages: updates kept per subscription.
        history_max_age_seconds: oldest update kept, in seconds.
        clock: wall-clock source in seconds since the epoch (pass one in tests).
    """

    def __init__(
        self,
        *,
        history_max_messages: int,
        history_max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._retained = Retained(
            max_messages=history_max_messages, max_age_seconds=history_max_age_seconds
        )
        # Seqs continue from a base in microseconds since the epoch, so a restarted server
        # never reuses a seq that a client may still resume from (it gets resync_required).
        self._base = int(clock() * _MICROSECONDS)
        self._seq: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, self._base)
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Begin calling `deliver` for every update published from now on."""
        self._deliver = deliver

    async def publish(
        self, subscription: str, message_type: str, data: Mapping[str, Any], correlation_id: str
    ) -> Update:
        """Number, keep and deliver one update; return it (it has been delivered)."""
        seq = self._seq[subscription] + 1
        update = make_update(
            subscription,
            message_type,
            data,
            seq=seq,
            correlation_id=correlation_id,
            wall=self._clock(),
        )
        # Counted only once encoded: an update that cannot be encoded leaves no gap in seq.
        self._seq[subscription] = seq
        self._retained.append(update)
        if self._deliver is not None:
            self._deliver(update)
        return update

    async def history(self, subscription: str, after_seq: int) -> History:
        """The kept updates of `subscription` after `after_seq`, dropping those too old."""
        self._retained.expire(subscription, self._clock())
        return self._retained.history(subscription, after_seq, self._seq[subscription])

    def position(self, subscription: str) -> int:
        """The seq of the last update delivered on `subscription` (the base before the first)."""
        return self._seq[subscription]

    def status(self) -> BrokerStatus:
        """Always connected; `details.published` counts the updates per subscription."""
        published = {sub: seq - self._base for sub, seq in self._seq.items()}
        return BrokerStatus("memory", True, {"published": published})

    async def close(self) -> None:
        """Stop delivering."""
        self._deliver = None
