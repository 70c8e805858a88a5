"""One connection to Redis, from connect to its first failure: the Redis half of the broker.

Keys (`P` is `redis_key_prefix`, `E` the epoch):

- `P epoch`: the epoch, the base of the current numbering; seqs are `E + n`.
- `P E:n:<sub>`: the number `n` of the last entry published on `<sub>`.
- `P E:s:<sub>`: the stream of `<sub>`, trimmed to about `history_max_messages`. Entry id
  `<n>-0`; fields `t` (type), `d` (data), `c` (correlation id), `w` (publish wall time).
- `P E:instances`: live instances, id -> heartbeat expiry (ms, Redis clock).
- `P E:republisher`: the instance that republishes producer channels (a lease).
- `P E:progress`: the pub/sub channel of read-progress notes (see `acks`).

Every key but `P epoch` lives under its epoch, so a new epoch never mixes with the remains
of an old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .. import messages
from ..messages import IdFactory
from ..metrics import Metrics
from ..settings import Settings
from .acks import Acks, format_progress, parse_progress
from .base import Deliver, Update, make_update
from .feed import Feed
from .producers import PRODUCER_CHANNELS, PRODUCER_PATTERNS, route

__all__ = ["RedisLink"]

# Seq assignment and append in one atomic step, so stream order is seq order. Refused when
# the epoch is not the caller's (Redis restarted under it); skipped (0) for a republish
# when the caller no longer holds the republisher lease, so two instances never both
# republish one producer message.
_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('HIVEEPOCH epoch changed; reconnecting')
end
if ARGV[7] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[7] then
  return 0
end
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], tostring(n) .. '-0',
  't', ARGV[3], 'd', ARGV[4], 'c', ARGV[5], 'w', ARGV[6])
return n
"""

# Renew this instance's liveness, drop expired ones, take or renew the republisher lease;
# return {lease holder, live instances}. Times come from Redis's clock, so the instances'
# clocks need not agree.
_HEARTBEAT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('HIVEEPOCH epoch changed; reconnecting')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
-- The set itself expires after ten TTLs without any heartbeat (every instance gone).
redis.call('PEXPIRE', KEYS[2], ttl * 10)
local holder = redis.call('GET', KEYS[3])
if not holder then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl)
  holder = ARGV[2]
elseif holder == ARGV[2] then
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return {holder, redis.call('ZRANGE', KEYS[2], 0, -1)}
"""

# A graceful exit: leave the live set and hand the lease over at once.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# An instance missing this many heartbeats in a row is no longer waited for.
_MISSED_HEARTBEATS = 3
_MS_PER_SECOND = 1000
_US_PER_SECOND = 1_000_000
# XREAD blocks for half the Redis timeout (in ms), so a blocked read returns well before
# the socket timeout would call the connection dead.
_BLOCK_MS_PER_TIMEOUT_SECOND = _MS_PER_SECOND // 2
# How long one pub/sub poll waits, in seconds; short, so the task notices cancellation.
_LISTEN_POLL_SECONDS = 1.0


class RedisLink:
    """One session with Redis; the broker makes a new one for every connection attempt.

    `open` connects, joins the epoch, subscribes, heartbeats once and catches up with the
    streams; `run` then reads, listens and heartbeats until any of them fails, and raises.
    A link is never reused, so no stale connection or subscription outlives a failure.

    Args:
        settings: the `redis_*` and `history_*` settings are used.
        instance_id: this instance's id in Redis.
        feed: the instance's ordered copy of every subscription (kept across links).
        acks: live instances and read positions (emptied when a link ends).
        deliver: called with every update and notice to hand to the fan-out, in order.
        metrics: refused producer messages are counted here.
        clock: wall-clock source in seconds since the epoch.
        new_id: makes the correlation id of a producer message that carries none.
    """

    def __init__(
        self,
        settings: Settings,
        instance_id: str,
        *,
        feed: Feed,
        acks: Acks,
        deliver: Deliver,
        metrics: Metrics,
        clock: Callable[[], float],
        new_id: IdFactory,
    ) -> None:
        self._s = settings
        self.instance_id = instance_id
        self._feed = feed
        self._acks = acks
        self._deliver = deliver
        self._metrics = metrics
        self._clock = clock
        self._new_id = new_id
        timeout = settings.redis_timeout_seconds
        self.client = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # No retries or reconnects hidden inside redis-py: every failure must reach
                # the broker's supervisor, which owns reconnecting, backoff and health.
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
                # RESP2: with RESP3 and decoded responses, redis-py 8 does not recognise the
                # pub/sub PONG that the liveness check below depends on.
                protocol=2,
                # A producer may publish bytes that are not UTF-8; they must not end a link,
                # nor reach subscribers as U+FFFD: surrogateescape keeps them visible as lone
                # surrogates, which `producers.route` refuses (and counts).
                encoding_errors="surrogateescape",
                client_name=f"hive-ws-{instance_id}",
            )
        )
        self._pubsub = self.client.pubsub()
        self._append = self.client.register_script(_APPEND)
        self._heartbeat = self.client.register_script(_HEARTBEAT)
        self.epoch = 0
        """The epoch joined by `open`."""
        self.republisher = False
        """Whether this instance holds the republisher lease (as of the last heartbeat)."""
        self._positions: dict[str, str] = {}
        self._last_pong = time.monotonic()

    def key(self, *parts: object) -> str:
        """The Redis key (or channel) named by `parts`, under the configured prefix."""
        return self._s.redis_key_prefix + ":".join(str(p) for p in parts)

    async def open(self) -> None:
        """Join the epoch, subscribe, announce this instance and catch up with the streams.

        Raises:
            RedisError, OSError: Redis is unreachable or failed.
        """
        self.epoch = await self._join()
        # Read on after the last update delivered (entry ids are `<n>-0`, n = seq - epoch).
        start = {sub: self._feed.last_seq(sub) - self.epoch for sub in messages.SUBSCRIPTIONS}
        self._positions = {self.key(self.epoch, "s", sub): f"{n}-0" for sub, n in start.items()}
        await self._pubsub.subscribe(self.key(self.epoch, "progress"), *PRODUCER_CHANNELS)
        await self._pubsub.psubscribe(*PRODUCER_PATTERNS)
        await self._beat()
        # Announce where this instance starts reading: from now on, publishes wait for it.
        await self.client.publish(
            self.key(self.epoch, "progress"), format_progress(self.instance_id, start)
        )
        while await self._read(block_ms=None):
            pass  # what the streams retain is delivered before the link says it is up

    async def run(self) -> None:
        """Read, listen and heartbeat until one of them fails; raise that failure."""
        block_ms = max(1, int(self._s.redis_timeout_seconds * _BLOCK_MS_PER_TIMEOUT_SECOND))
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._read_forever(block_ms))
            tasks.create_task(self._listen())
            tasks.create_task(self._beat_forever())

    async def append(
        self,
        subscription: str,
        message_type: str,
        data: Mapping[str, Any],
        correlation_id: str,
        wall: float,
        *,
        lease: bool = False,
    ) -> int:
        """Append one update to its stream; return its number `n` (seq - epoch).

        With `lease`, append only while this instance holds the republisher lease, and
        return 0 when it does not.

        Raises:
            RedisError, OSError: Redis failed or changed epoch; the update may or may not
                have been appended.
        """
        n = await self._append(
            keys=[
                self.key("epoch"),
                self.key(self.epoch, "n", subscription),
                self.key(self.epoch, "s", subscription),
                self.key(self.epoch, "republisher"),
            ],
            args=[
                self.epoch,
                self._s.history_max_messages,
                message_type,
                messages.encode(data),
                correlation_id,
                repr(wall),
                self.instance_id if lease else "",
            ],
        )
        return int(n)

    async def leave(self) -> None:
        """Leave the live set and release the republisher lease (a graceful exit)."""
        await self.client.eval(
            _LEAVE,
            2,
            self.key(self.epoch, "instances"),
            self.key(self.epoch, "republisher"),
            self.instance_id,
        )

    async def aclose(self) -> None:
        """Close every connection of the link; errors from dead connections are ignored."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose(close_connection_pool=True)

    # -- joining -----------------------------------------------------------------------

    async def _join(self) -> int:
        """Adopt the current epoch, or start one when Redis has none; return it."""
        seconds, micros = await self.client.time()
        # Redis's clock in microseconds: above every seq of any earlier epoch unless an
        # epoch took more than one publish per microsecond, and above all this instance saw.
        candidate = max(seconds * _US_PER_SECOND + micros, self._feed.highest_seq() + 1)
        old = await self.client.set(self.key("epoch"), candidate, nx=True, get=True)
        epoch = candidate if old is None else int(old)
        for notice in self._feed.begin_epoch(epoch, self._clock()):
            self._deliver(notice)
        return epoch

    # -- reading -----------------------------------------------------------------------

    async def _read(self, block_ms: int | None) -> int:
        """Read the next entries of every stream, deliver them, publish this progress.

        Returns:
            How many entries were read.
        """
        streams: dict[Any, Any] = self._positions
        reply: Any = await self.client.xread(
            streams, count=self._s.history_max_messages, block=block_ms
        )
        marks: dict[str, int] = {}
        count = 0
        for key, entries in reply or ():
            sub = key.rsplit(":", 1)[1]
            for entry_id, fields in entries:
                self._positions[key] = entry_id
                n = int(entry_id.partition("-")[0])
                marks[sub] = n
                count += 1
                update = self._decode(sub, self.epoch + n, fields)
                if update is not None:
                    for item in self._feed.accept(update):
                        self._deliver(item)
        if marks:
            self._acks.record(self.instance_id, marks)
            note = format_progress(self.instance_id, marks)
            await self.client.publish(self.key(self.epoch, "progress"), note)
        return count

    def _decode(self, subscription: str, seq: int, fields: Mapping[str, str]) -> Update | None:
        try:
            return make_update(
                subscription,
                fields["t"],
                messages.decode_json(fields["d"], max_depth=self._s.max_json_depth),
                seq=seq,
                correlation_id=fields["c"],
                wall=float(fields["w"]),
            )
        except (KeyError, ValueError, TypeError):
            # Not written by this broker. Skipping it leaves a gap that the feed turns into
            # resync_required, instead of a link that fails on it again and again.
            return None

    async def _read_forever(self, block_ms: int) -> None:
        while True:
            await self._read(block_ms)

    # -- pub/sub: progress notes and producer channels ---------------------------------

    async def _listen(self) -> None:
        progress = self.key(self.epoch, "progress")
        while True:
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=_LISTEN_POLL_SECONDS
            )
            if message is None:
                continue
            if message["type"] == "pong":
                self._last_pong = time.monotonic()
            elif message["channel"] == progress:
                with contextlib.suppress(ValueError):  # a malformed note confirms nothing
                    instance, marks = parse_progress(message["data"])
                    if instance != self.instance_id:
                        self._acks.record(instance, marks)
            elif self.republisher:
                await self._republish(message["channel"], message["data"])

    async def _republish(self, channel: str, payload: str) -> None:
        try:
            routed = route(
                channel,
                payload,
                self._s.max_inbound_message_bytes,
                max_depth=self._s.max_json_depth,
            )
        except ValueError:
            self._metrics.publishes_refused.labels("producer_invalid").inc()
            return
        await self.append(
            routed.subscription,
            routed.type,
            routed.data,
            routed.correlation_id or self._new_id(),
            self._clock(),
            lease=True,
        )

    # -- heartbeat ---------------------------------------------------------------------

    async def _beat(self) -> None:
        ttl_ms = int(self._s.redis_heartbeat_seconds * _MISSED_HEARTBEATS * _MS_PER_SECOND)
        holder, live = await self._heartbeat(
            keys=[
                self.key("epoch"),
                self.key(self.epoch, "instances"),
                self.key(self.epoch, "republisher"),
            ],
            args=[self.epoch, self.instance_id, ttl_ms],
        )
        self.republisher = holder == self.instance_id
        self._acks.set_live(live)

    async def _beat_forever(self) -> None:
        period = self._s.redis_heartbeat_seconds
        while True:
            await asyncio.sleep(period)
            await self._beat()
            # A pub/sub connection can die silently (a proxy or NAT drops it) while the
            # others work. Unchecked, the instance would stop hearing producers and progress
            # notes while reporting healthy: the "deaf node".
            await self._pubsub.ping()
            if time.monotonic() - self._last_pong > period + self._s.redis_timeout_seconds:
                raise ConnectionError("the pub/sub connection stopped answering PING")
