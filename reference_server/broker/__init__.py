"""Brokers: how updates get from a publisher to every instance's subscribers.

`Broker` is the interface the server needs. `MemoryBroker` is the single-instance default,
a product feature (not a test double); `RedisBroker` shares updates between instances
through Redis Streams. Pass either to `create_app(broker=...)`, or let the settings choose
(`redis_url`).

Modules: `base` (the interface and what it carries), `retained` (the bounded history
both brokers keep), `memory`, and the Redis broker's parts: `redis` (supervisor), `link`
(one Redis session), `feed` (order and gaps), `acks`, `producers`, `marks` (names of
producer messages), `backoff`.
"""

from __future__ import annotations

from .base import Broker, BrokerStatus, Deliver, History, Update
from .memory import MemoryBroker
from .redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerStatus",
    "Deliver",
    "History",
    "MemoryBroker",
    "RedisBroker",
    "Update",
]
