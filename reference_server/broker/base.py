"""What every broker shares: the `Broker` interface, the `Update` it delivers, `History`.

`Broker` is the interface; `MemoryBroker` (`broker.memory`) is the single-instance default, a
product feature (not a test double). `RedisBroker` (`broker.redis`) implements the same
interface for several instances.

A broker assigns each update its `seq` (per subscription, starting at 1), encodes the frame
once, keeps a bounded history for resume, and calls the `deliver` callback it was started
with, once per update, in `seq` order per subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import messages

__all__ = ["Broker", "BrokerStatus", "Deliver", "History", "Update", "make_update"]


@dataclass(frozen=True, slots=True)
class Update:
    """One published update, encoded once and shared by every recipient.

    Attributes:
        subscription: the subscription it was published on.
        type: the frame type (`agent_update`, `critical_alert`, ...).
        seq: its sequence number on `subscription`.
        data: the published payload.
        correlation_id: the publisher's correlation id.
        published_at: wall-clock seconds since the epoch when it was published.
        text: the frame as sent on the wire.
    """

    subscription: str
    type: str
    seq: int
    data: Mapping[str, Any]
    correlation_id: str
    published_at: float
    text: str


def make_update(
    subscription: str,
    message_type: str,
    data: Mapping[str, Any],
    *,
    seq: int,
    correlation_id: str,
    wall: float,
) -> Update:
    """Build and encode an update frame (the one place update frames are made)."""
    body = messages.frame(
        message_type,
        correlation_id=correlation_id,
        wall=wall,
        subscription=subscription,
        data=data,
        seq=seq,
    )
    return Update(
        subscription, message_type, seq, data, correlation_id, wall, messages.encode(body)
    )


@dataclass(frozen=True, slots=True)
class History:
    """What a broker still holds of one subscription, for a resume.

    Attributes:
        updates: retained updates after the requested seq, oldest first.
        oldest_seq: the oldest seq still retained (`latest_seq + 1` when none is).
        latest_seq: the newest seq published on the subscription (the broker's base before
            the first).
    """

    updates: list[Update]
    oldest_seq: int
    latest_seq: int

    def covers(self, last_seq: int) -> bool:
        """Whether every update after `last_seq` can be replayed from this history."""
        return self.oldest_seq - 1 <= last_seq <= self.latest_seq


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """A broker's health, for `/health` and the metrics.

    Attributes:
        kind: `memory` or `redis`.
        connected: False while the backing service is unreachable.
        details: extra fields shown under `components.broker` on `/health`.
    """

    kind: str
    connected: bool
    details: dict[str, Any] = field(default_factory=dict)


Deliver = Callable[[Update], None]
"""The callback a broker calls once per update, in seq order per subscription; it must not block."""


class Broker(Protocol):
    """What the app needs of a broker. Implementations: `MemoryBroker`, `RedisBroker`."""

    async def start(self, deliver: Deliver) -> None:
        """Begin calling `deliver` for every update published on any instance."""

    async def publish(
        self, subscription: str, message_type: str, data: Mapping[str, Any], correlation_id: str
    ) -> Update:
        """Publish an update; return it once it is acknowledged (it will be delivered).

        Raises:
            BrokerUnavailable: the update was not taken; nothing was published.
        """

    async def history(self, subscription: str, after_seq: int) -> History:
        """The retained updates of `subscription` with seq greater than `after_seq`."""

    def position(self, subscription: str) -> int:
        """The seq of the last update delivered on `subscription` to this instance.

        Before the first, the numbering's base (the seq before the first update), so a
        resume from it replays the first. Without I/O; it changes only when `deliver` is
        called, so whatever `deliver` updated agrees with it.
        """

    def status(self) -> BrokerStatus:
        """Current health, without I/O."""

    async def close(self) -> None:
        """Stop delivering and release connections."""
