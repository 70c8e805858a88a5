"""Names for producer messages that every instance agrees on, so each is appended once.

Every instance republishes every producer message it hears, so that no single instance's
death or stall loses one; Redis then has to append each message once, whichever instances
hear it. Redis pub/sub gives a message no id, and two messages may carry identical payloads
while being two events, so a hash of the payload cannot name it. Order can: Redis runs
commands one at a time, and "subscribers receive the messages in the order that the messages
are published" (redis.io/docs/manual/pubsub). So every instance subscribed to the same
channels hears the same sequence.

Instances therefore publish **markers** on a channel of their own (each once when it joins,
then once per heartbeat). A producer message's name is the last marker heard before it and
its position after that marker: `<marker>:<k>`. Two instances that heard the same marker give
each later message the same name. An instance that has heard no marker since it subscribed
cannot name what it hears; it leaves those messages to instances that can. A link is not up
until Redis has confirmed its subscriptions and it has heard its own first marker.

Pure: the link feeds `Marks` what it hears, in order.
"""

from __future__ import annotations

__all__ = ["MAX_MARK_CHARS", "Marks"]

MAX_MARK_CHARS = 128
"""Longest marker used, in characters; longer ones (not made by an instance) are ignored by
every instance alike, so names stay the same everywhere and keys stay small."""


class Marks:
    """The naming state of one pub/sub connection: the last marker and messages since."""

    def __init__(self) -> None:
        self._mark: str | None = None
        self._since = 0

    @property
    def current(self) -> str | None:
        """The last marker heard (None before the first)."""
        return self._mark

    def mark(self, text: str) -> None:
        """A marker was heard on the marker channel; number what follows from it."""
        if len(text) <= MAX_MARK_CHARS:
            self._mark, self._since = text, 0

    def name(self) -> str | None:
        """Name the next producer message heard; None before the first marker.

        Call it once for every message heard on a producer channel, valid or not, in the
        order heard: every instance must count the same messages.
        """
        if self._mark is None:
            return None
        self._since += 1
        return f"{self._mark}:{self._since}"
