"""Acknowledging a publish only once every live instance has taken it.

Redis runs here without persistence, so an update that is in a stream but not yet read by
some instance dies with Redis on `kill -9`. The broker therefore answers a publisher only
after every live instance has read the update and handed it to its fan-out: from then on,
a Redis crash cannot take it from any subscriber.

`Acks` is the bookkeeping, free of I/O: the set of live instances (from the heartbeats
stored in Redis), how far each has read every subscription (from the progress notes each
instance publishes after a read), and the publishes waiting for both to catch up. Read
positions are counted in the epoch's own numbers (`seq - epoch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from .. import messages

__all__ = ["Acks", "format_progress", "parse_progress"]


def format_progress(instance: str, marks: Mapping[str, int]) -> str:
    """The progress note `instance` publishes: `<instance> <sub>=<n> ...`."""
    return " ".join([instance, *(f"{sub}={n}" for sub, n in marks.items())])


def parse_progress(text: str) -> tuple[str, dict[str, int]]:
    """Read a progress note made by `format_progress`.

    Raises:
        ValueError: the note is malformed or names an unknown subscription.
    """
    instance, *parts = text.split()
    marks: dict[str, int] = {}
    for part in parts:
        sub, _, n = part.partition("=")
        if sub not in messages.SUBSCRIPTIONS or not n.isdigit():
            raise ValueError(f"bad progress note part {part[: messages.ECHO_CHARS]!r}")
        marks[sub] = int(n)
    return instance, marks


class Acks:
    """Live instances, their read positions, and publishes waiting for all of them.

    Args:
        me: this instance's id; it always counts as live.
    """

    def __init__(self, me: str) -> None:
        self.me = me
        self.live: frozenset[str] = frozenset({me})
        self._read: dict[str, dict[str, int]] = {}
        self._waiting: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    def set_live(self, instances: Iterable[str]) -> None:
        """Replace the live set (from a heartbeat) and release what it now allows."""
        self.live = frozenset(instances) | {self.me}
        for instance in set(self._read) - self.live:
            del self._read[instance]
        for sub in list(self._waiting):
            self._settle(sub)

    def record(self, instance: str, marks: Mapping[str, int]) -> None:
        """Note that `instance` has read each subscription in `marks` up to its number.

        An instance heard from is live from then on (until a heartbeat says otherwise), so
        one that has just joined is waited for before the other instances' next heartbeat.
        """
        self.live |= {instance}
        positions = self._read.setdefault(instance, {})
        for sub, n in marks.items():
            if n > positions.get(sub, 0):
                positions[sub] = n
            if sub in self._waiting:
                self._settle(sub)

    def wait(self, subscription: str, n: int) -> asyncio.Future[None]:
        """A future done once every live instance has read entry `n` of `subscription`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subscription, []).append((n, future))
        self._settle(subscription)
        return future

    def fail(self, error: BaseException) -> None:
        """Fail every waiting publish with `error` and forget all read positions.

        Called when the Redis session ends: the positions belonged to it, and a publish
        not yet confirmed cannot be confirmed any more.
        """
        waiting, self._waiting = self._waiting, {}
        self._read.clear()
        self.live = frozenset({self.me})
        for entries in waiting.values():
            for _, future in entries:
                if not future.done():
                    future.set_exception(error)

    def _read_by_all(self, subscription: str, n: int) -> bool:
        return all(self._read.get(i, {}).get(subscription, 0) >= n for i in self.live)

    def _settle(self, subscription: str) -> None:
        still = []
        for n, future in self._waiting[subscription]:
            if future.done():
                continue  # the publisher gave up waiting
            if self._read_by_all(subscription, n):
                future.set_result(None)
            else:
                still.append((n, future))
        if still:
            self._waiting[subscription] = still
        else:
            del self._waiting[subscription]
