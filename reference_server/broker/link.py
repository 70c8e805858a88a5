"""One connection to Redis, from connect to its first failure: the Redis half of the broker.

Keys (`P` is `redis_key_prefix`, `E` the epoch):

- `P epoch`: the epoch, the base of the current numbering; seqs are `E + n`.
- `P E:n:<sub>`: the number `n` of the last entry published on `<sub>`.
- `P E:s:<sub>`: the stream of `<sub>`, trimmed to about `history_max_messages`. Entry id
  `<n>-0`; fields `t` (type), `d` (data), `c` (correlation id), `w` (publish wall time).
- `P E:instances`: live instances, id -> heartbeat expiry (ms, Redis clock).
- `P E:beats`: id -> time of the instance's last heartbeat (ms, Redis clock).
- `P E:progress`: the pub/sub channel of read-progress notes (see `acks`).
- `P E:marks`: the pub/sub channel of markers that name producer messages (see `marks`).
- `P E:once:<name>`: a producer message already appended, by name; expires after
  `redis_producer_dedupe_seconds`.

Every key but `P epoch` lives under its epoch, so a new epoch never mixes with the remains
of an old one.

**Sentinel.** With `redis_sentinels`, `open` asks the Sentinels for the primary of
`redis_sentinel_master` (all at once, first valid answer, any error skipped: `sentinels`),
checks with `ROLE` that the node answering there is a primary, and pins every connection of
the link to it. A task beside the heartbeat asks again every heartbeat period: once the
Sentinels name another primary, the link ends and the next one follows them. So no link
keeps reading a demoted node while its heartbeats succeed there (the "deaf node" of
centrifugal/centrifugo#1189). A Sentinel query that fails or hangs proves nothing and never
delays a heartbeat; the heartbeat's own `ROLE` ends the link once the node is demoted.

**Replicated appends.** Replication is asynchronous: a failover keeps only what a replica
had. An append for a publish waits (`WAIT`, on the connection that wrote it) for the
replicas the broker asks (`Settings.redis_replicas_to_confirm`; `ROLE` at open and at
every heartbeat tells it whether the primary has any), and raises `NotReplicated` when
fewer confirm in time. Such appends run on a pool of their own, at most
`redis_wait_max_publishes` at once, so they never starve the heartbeat and the reads.
An update that instances read but no replica held can still vanish with its primary; the
new primary would then give its number to another update. `open` checks that the last
entry this instance delivered on every stream is still there, unchanged; when it is not,
the numbering cannot go on, and the link starts a new epoch (every subscriber gets
`resync_required`) instead of reusing a seq.

**Bounded waits.** Every Redis call is bounded by `redis_timeout_seconds` (connect, pool,
read and write timeouts of redis-py). Cancellation is not relied on to stop a link: on
Python 3.11, `asyncio.wait_for` (which redis-py uses for every write) can swallow a
cancellation that arrives as the write completes (CPython gh-86296, fixed in 3.12 by
gh-96764), and the task then carries on. So `run` stops its tasks with a flag as well as a
cancel, closes the connections under any task still stuck, and waits for each step at most
`redis_timeout_seconds` (`finish_within`); `aclose` is bounded the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .. import messages
from ..logs import get_logger
from ..messages import IdFactory
from ..metrics import Metrics
from ..settings import Settings, sentinel_address
from .acks import Acks, format_progress, parse_progress
from .base import Deliver, Update, make_update
from .feed import Feed
from .marks import Marks
from .producers import PRODUCER_CHANNELS, PRODUCER_PATTERNS, route
from .sentinels import Sentinels

__all__ = ["DUPLICATE", "STALE", "LinkStale", "NotReplicated", "RedisLink", "finish_within"]

DUPLICATE = 0
"""What `RedisLink.append` returns for a producer message another instance appended already."""
STALE = -1
"""What `RedisLink.append` returns when this instance's last heartbeat is older than half
of `redis_producer_dedupe_seconds`: nothing appended."""


class LinkStale(ConnectionError):
    """This instance went without a heartbeat for half of `redis_producer_dedupe_seconds`.

    It was stalled (stopped, swapped out, starved of CPU). The link must end: what its
    pub/sub connection buffered meanwhile may be older than the names Redis remembers, and
    would be appended twice. A new link (new connections) starts afresh and catches up from
    the streams, where the other instances put every message.
    """


class NotReplicated(Exception):
    """Fewer replicas than `redis_replicas_to_confirm` confirmed an append in time.

    The primary holds the update and instances may deliver it, but a failover now could
    lose it, so its publish must not be acknowledged.

    Attributes:
        n: the update's number in its stream (seq - epoch).
        confirmed: the replicas that confirmed it within `redis_wait_timeout_ms`.
        wanted: `redis_replicas_to_confirm`.
    """

    def __init__(self, n: int, confirmed: int, wanted: int) -> None:
        super().__init__(f"{confirmed} of {wanted} replicas confirmed entry {n}")
        self.n = n
        self.confirmed = confirmed
        self.wanted = wanted


class PrimaryMoved(ConnectionError):
    """The Sentinels name another primary than the node this link is pinned to."""


async def finish_within(seconds: float, work: Coroutine[Any, Any, object]) -> bool:
    """Run `work` for at most `seconds`; return whether it finished (failures included).

    Work still running then is cancelled and left behind, never awaited: code that swallows
    a cancellation (CPython gh-86296, inside redis-py on Python 3.11) must not hold the
    caller. Its failure, if any, is retrieved and dropped; callers that need it await the
    work themselves.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
    task.add_done_callback(_retrieve)
    return bool(done)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: a dead connection's error is expected here


# Seq assignment and append in one atomic step, so stream order is seq order. Refused when
# the epoch is not the caller's (Redis restarted under it). A producer message (ARGV[7] is
# the caller's instance id) is appended only by the first instance to bring it (its name in
# KEYS[5], else 0): every instance that heard it brings it, so any one of them dying or
# stalling loses nothing. An instance whose last heartbeat (KEYS[4]) is older than ARGV[9]
# ms is refused (-1): what it brings now may be older than the names Redis remembers.
_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('HIVEEPOCH epoch changed; reconnecting')
end
if ARGV[7] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local beat = redis.call('HGET', KEYS[4], ARGV[7])
  if not beat or now - tonumber(beat) > tonumber(ARGV[9]) then return -1 end
  if not redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[8]) then return 0 end
end
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], tostring(n) .. '-0',
  't', ARGV[3], 'd', ARGV[4], 'c', ARGV[5], 'w', ARGV[6])
return n
"""

# Renew this instance's liveness, drop expired ones, note the beat's time (KEYS[3], which
# outlives a short lapse from the live set); return the live instances. A link joins with
# ARGV[4] = '1'; a later beat more than ARGV[5] ms after the previous one is refused: the
# instance stalled too long to keep this link (see LinkStale). Times come from Redis's
# clock, so the instances' clocks need not agree.
_HEARTBEAT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('HIVEEPOCH epoch changed; reconnecting')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local stale = tonumber(ARGV[5])
if ARGV[4] ~= '1' then
  local beat = redis.call('HGET', KEYS[3], ARGV[2])
  if not beat or now - tonumber(beat) > stale then
    return redis.error_reply('HIVESTALE no heartbeat for too long; rejoining')
  end
end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local beats = redis.call('HGETALL', KEYS[3])
for i = 1, #beats, 2 do
  if now - tonumber(beats[i + 1]) > stale then redis.call('HDEL', KEYS[3], beats[i]) end
end
redis.call('HSET', KEYS[3], ARGV[2], now)
-- Both expire after ten TTLs without any heartbeat (every instance gone).
redis.call('PEXPIRE', KEYS[2], ttl * 10)
redis.call('PEXPIRE', KEYS[3], ttl * 10)
return redis.call('ZRANGE', KEYS[2], 0, -1)
"""

# Start a new epoch (ARGV[2]) unless another instance already replaced the one this
# instance found broken (ARGV[1]); return the epoch in force.
_RESTART_EPOCH = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
"""

# A graceful exit: leave the live set at once, so no publish waits for this instance.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_MS_PER_SECOND = 1000
# An instance whose last heartbeat is older than the dedupe memory divided by this may no
# longer republish; the other half of the memory covers its listener's own lag.
_STALE_PER_DEDUPE = 2
_US_PER_SECOND = 1_000_000
# XREAD blocks for half the Redis timeout (in ms), so a blocked read returns well before
# the socket timeout would call the connection dead.
_BLOCK_MS_PER_TIMEOUT_SECOND = _MS_PER_SECOND // 2
# How long one pub/sub poll waits, in seconds; short, so the task notices cancellation.
_LISTEN_POLL_SECONDS = 1.0


def _sentinels(settings: Settings) -> Sentinels | None:
    """The Sentinels of `settings`, asked within `redis_timeout_seconds`; None without."""
    if not settings.redis_sentinels:
        return None
    return Sentinels(
        [sentinel_address(a) for a in settings.redis_sentinels],
        settings.redis_sentinel_master,
        timeout=settings.redis_timeout_seconds,
        connection_kwargs={"password": settings.redis_sentinel_password or None},
    )


def _client(settings: Settings, connections: int, instance_id: str) -> Redis:
    """A client with at most `connections` connections, each call bounded in time.

    With Sentinels, `open` sets the address (the primary they name) before connecting.
    """
    timeout = settings.redis_timeout_seconds
    credentials = {"password": settings.redis_password or None} if settings.redis_sentinels else {}
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url or "redis://",
            max_connections=connections,
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
            **credentials,
        )
    )


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
        metrics: producer messages appended, found duplicate or dropped are counted here.
        clock: wall-clock source in seconds since the epoch.
        new_id: makes the correlation id of a producer message that carries none, and this
            link's marker prefix.
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
        self._log = get_logger(instance=instance_id)
        self.sentinels = _sentinels(settings)
        """With Sentinels: who to ask for the primary (their `failed` entries go to `/health`)."""
        self.client = _client(settings, settings.redis_max_connections, instance_id)
        # Publishes that wait for replicas (`WAIT`) hold their connection for up to
        # `redis_wait_timeout_ms`: a pool of their own, so a burst of them never starves the
        # heartbeat and the reads of connections (they would end the link).
        self._waits = _client(settings, settings.redis_wait_max_publishes, instance_id)
        self._wait_slots = asyncio.Semaphore(settings.redis_wait_max_publishes)
        self.replicas = 0
        """Replicas connected to the primary at its last `ROLE` (open, each heartbeat)."""
        self.replicas_in_sync = 0
        """Of those, the replicas that have acknowledged the replication stream (a `ROLE`
        offset above 0: their full sync is over), so a `WAIT` can count them."""
        self.role_read_at = 0.0
        """When that `ROLE` was read (`time.monotonic()` seconds; 0: not yet)."""
        self.replica_seen = False
        """Whether this link ever saw the primary with a replica."""
        self._pubsub = self.client.pubsub()
        self._append = self.client.register_script(_APPEND)
        self._heartbeat = self.client.register_script(_HEARTBEAT)
        self.epoch = 0
        self.address: tuple[str, int] | None = None
        """With Sentinels: the primary this link is pinned to (set by `open`)."""
        """The epoch joined by `open`."""
        self._positions: dict[str, str] = {}
        self._last_pong = time.monotonic()
        self._marks = Marks()
        self._mark_prefix = new_id()
        self._marks_sent = 0
        # Cleared when the link stops: every loop checks it, so a task whose cancellation
        # was swallowed (see the module docstring) still ends at its next turn.
        self._running = True

    def key(self, *parts: object) -> str:
        """The Redis key (or channel) named by `parts`, under the configured prefix."""
        return self._s.redis_key_prefix + ":".join(str(p) for p in parts)

    async def open(self) -> None:
        """Join the epoch, subscribe, announce this instance and catch up with the streams.

        Raises:
            RedisError, OSError: Redis is unreachable or failed, or (with Sentinels) no
                Sentinel names a primary.
            PrimaryMoved: the node (named by the Sentinels, or `redis_url`) is no primary.
        """
        if self.sentinels is not None:
            await self._pin_primary()
        await self._check_role()
        self.epoch = await self._join()
        # Read on after the last update delivered (entry ids are `<n>-0`, n = seq - epoch).
        start = {sub: self._feed.last_seq(sub) - self.epoch for sub in messages.SUBSCRIPTIONS}
        self._positions = {self.key(self.epoch, "s", sub): f"{n}-0" for sub, n in start.items()}
        channels = (self.key(self.epoch, "progress"), self.key(self.epoch, "marks"))
        await self._pubsub.subscribe(*channels, *PRODUCER_CHANNELS)
        await self._pubsub.psubscribe(*PRODUCER_PATTERNS)
        await self._beat(joining=True)
        # Name producer messages from now on (marks). The link is not up until it has heard
        # its own first marker: before that, alone, it would drop what producers publish.
        await self._hear_own_mark(len(channels) + len(PRODUCER_CHANNELS) + len(PRODUCER_PATTERNS))
        # Announce where this instance starts reading: from now on, publishes wait for it.
        await self.client.publish(
            self.key(self.epoch, "progress"), format_progress(self.instance_id, start)
        )
        while await self._read(block_ms=None):
            pass  # what the streams retain is delivered before the link says it is up
        # Catching up may have taken longer than the liveness TTL: renew before running.
        await self._beat(joining=True)

    async def run(self) -> None:
        """Read, listen and heartbeat until one of them fails; raise that failure.

        Also when cancelled, returns within about 2 x `redis_timeout_seconds`: its tasks are
        stopped, and their connections closed if they do not stop in time (`_stop`).
        """
        block_ms = max(1, int(self._s.redis_timeout_seconds * _BLOCK_MS_PER_TIMEOUT_SECOND))
        self._last_pong = time.monotonic()  # the PONG deadline counts from here, not `open`
        tasks = [
            asyncio.create_task(self._read_forever(block_ms), name="redis-read"),
            asyncio.create_task(self._listen(), name="redis-listen"),
            asyncio.create_task(self._beat_forever(), name="redis-heartbeat"),
            asyncio.create_task(self._watch_primary(), name="redis-sentinels"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
            raise ConnectionError("a Redis link task ended")  # they loop until they fail
        finally:
            await self._stop(tasks)

    async def append(
        self,
        subscription: str,
        message_type: str,
        data: Mapping[str, Any],
        correlation_id: str,
        wall: float,
        *,
        once: str | None = None,
        replicas: int = 0,
    ) -> int:
        """Append one update to its stream; return its number `n` (seq - epoch).

        Args:
            once: a producer message's name (`marks`): append it only if no instance has
                appended it under that name within `redis_producer_dedupe_seconds`, and
                only while this instance's last heartbeat is recent (see `LinkStale`).
            replicas: then wait (`WAIT`, at most `redis_wait_timeout_ms`) until this many
                replicas hold it; 0 does not wait.

        Returns:
            `n` (at least 1); with `once`, `DUPLICATE` (0) when it was appended already, or
            `STALE` (-1) when this instance's last heartbeat is too old (nothing appended).

        Raises:
            NotReplicated: appended, but fewer than `replicas` replicas confirmed it in time;
                or (its `n` 0) not appended: `redis_wait_max_publishes` publishes were
                waiting for replicas throughout `redis_wait_timeout_ms`.
            RedisError, OSError: Redis failed or changed epoch; the update may or may not
                have been appended.
        """
        dedupe_ms = int(self._s.redis_producer_dedupe_seconds * _MS_PER_SECOND)
        args = (subscription, message_type, data, correlation_id, wall, once, dedupe_ms)
        if not replicas:
            return int(await self._append_on(self.client, *args))
        # At most `redis_wait_max_publishes` wait at once; the next waits for a turn within
        # `redis_wait_timeout_ms`, then is refused unpublished (n = 0).
        try:
            async with asyncio.timeout(self._s.redis_wait_timeout_ms / _MS_PER_SECOND):
                await self._wait_slots.acquire()
        except TimeoutError:
            raise NotReplicated(0, 0, replicas) from None
        try:
            # One connection for both: WAIT counts the writes of the connection it runs on.
            async with self._waits.client() as one:
                n = int(await self._append_on(one, *args))
                if n > 0:
                    confirmed = int(await one.wait(replicas, self._s.redis_wait_timeout_ms))
                    if confirmed < replicas:
                        raise NotReplicated(n, confirmed, replicas)
        finally:
            self._wait_slots.release()
        return n

    async def _append_on(
        self,
        one: Redis,
        subscription: str,
        message_type: str,
        data: Mapping[str, Any],
        correlation_id: str,
        wall: float,
        once: str | None,
        dedupe_ms: int,
    ) -> Any:
        return await self._append(
            keys=[
                self.key("epoch"),
                self.key(self.epoch, "n", subscription),
                self.key(self.epoch, "s", subscription),
                self.key(self.epoch, "beats"),
                self.key(self.epoch, "once", once or ""),
            ],
            args=[
                self.epoch,
                self._s.history_max_messages,
                message_type,
                messages.encode(data),
                correlation_id,
                repr(wall),
                self.instance_id if once is not None else "",
                dedupe_ms,
                dedupe_ms // _STALE_PER_DEDUPE,
            ],
            client=one,
        )

    async def leave(self) -> None:
        """Leave the live set (a graceful exit): no publish waits for this instance."""
        await self.client.eval(_LEAVE, 1, self.key(self.epoch, "instances"), self.instance_id)

    async def aclose(self) -> None:
        """Close every connection of the link, each within `redis_timeout_seconds`.

        Errors from dead connections are ignored; a close that does not finish in time is
        abandoned (redis-py#3941: closing a pub/sub connection can wait forever).
        """
        self._running = False
        timeout = self._s.redis_timeout_seconds
        await finish_within(timeout, self._pubsub.aclose())  # type: ignore[no-untyped-call]
        await finish_within(timeout, self.client.aclose(close_connection_pool=True))
        await finish_within(timeout, self._waits.aclose(close_connection_pool=True))
        if self.sentinels is not None:
            await finish_within(timeout, self.sentinels.aclose())

    async def _stop(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """End the link's tasks; wait at most about 2 x `redis_timeout_seconds`."""
        self._running = False
        for task in tasks:
            task.cancel()
        timeout = self._s.redis_timeout_seconds
        _, stuck = await asyncio.wait(tasks, timeout=timeout)
        if stuck:
            # A task that ignored its cancellation waits on a socket: closing it ends the wait.
            await self.aclose()
            _, stuck = await asyncio.wait(stuck, timeout=timeout)
        for task in tasks:
            task.add_done_callback(_retrieve)
        if stuck:
            names = sorted(task.get_name() for task in stuck)
            self._log.warning("redis_link_tasks_abandoned", tasks=names)

    # -- joining -----------------------------------------------------------------------

    async def _join(self) -> int:
        """Adopt the current epoch, or start one when Redis has none; return it."""
        seconds, micros = await self.client.time()
        # Redis's clock in microseconds: above every seq of any earlier epoch unless an
        # epoch took more than one publish per microsecond, and above all this instance saw.
        candidate = max(seconds * _US_PER_SECOND + micros, self._feed.highest_seq() + 1)
        old = await self.client.set(self.key("epoch"), candidate, nx=True, get=True)
        epoch = candidate if old is None else int(old)
        if old is not None and not await self._delivered_still_there(epoch):
            epoch = int(
                await self.client.eval(_RESTART_EPOCH, 1, self.key("epoch"), epoch, candidate)
            )
            self._log.warning("redis_epoch_restarted", reason="history rolled back", epoch=epoch)
        for notice in self._feed.begin_epoch(epoch, self._clock()):
            self._deliver(notice)
        return epoch

    async def _delivered_still_there(self, epoch: int) -> bool:
        """Whether Redis still holds, unchanged, the last entry delivered on every stream.

        False after a failover to a replica that lacked entries this instance read: the new
        primary would number the next update like one already delivered.
        """
        if self._feed.epoch != epoch:
            return True  # nothing delivered from this epoch
        for sub in messages.SUBSCRIPTIONS:
            n = self._feed.last_seq(sub) - epoch
            if n <= 0:
                continue
            stream = self.key(epoch, "s", sub)
            counter = await self.client.get(self.key(epoch, "n", sub))
            if int(counter or 0) < n:
                return False
            entries: Any = await self.client.xrange(stream, f"{n}-0", f"{n}-0")
            if entries:
                if entries[0][1].get("c") != self._feed.last_correlation_id(sub):
                    return False
                continue
            first: Any = await self.client.xrange(stream, count=1)
            if not first or int(first[0][0].partition("-")[0]) <= n:
                return False  # missing, not trimmed away
        return True

    # -- Sentinel ----------------------------------------------------------------------

    async def _pin_primary(self) -> None:
        """Point every connection of this link at the primary the Sentinels name now.

        Raises:
            MasterNotFoundError: no Sentinel answered with a primary that is up.
        """
        assert self.sentinels is not None
        host, port = await self._ask_sentinels()
        self.address = (host, port)
        for pool in (self.client.connection_pool, self._waits.connection_pool):
            pool.connection_kwargs["host"], pool.connection_kwargs["port"] = self.address
        self._log.info("redis_primary", host=host, port=port)  # `open` checks its ROLE next

    async def _ask_sentinels(self) -> tuple[str, int]:
        assert self.sentinels is not None
        try:
            return await self.sentinels.primary()
        finally:
            if self.sentinels.failed:
                self._log.warning("redis_sentinels_failed", entries=self.sentinels.failed)

    async def _check_primary(self) -> None:
        """End the link once the Sentinels name another primary (see the module docstring).

        Runs beside the heartbeat, never inside it: a hung Sentinel costs this check at
        most `redis_timeout_seconds` and never delays a heartbeat or the PONG check. A
        Sentinel query that fails proves nothing (the heartbeat's `ROLE` watches the
        primary itself): the link goes on.
        """
        if self.sentinels is None:
            return
        try:
            host, port = await self._ask_sentinels()
        except RedisError as exc:
            self._log.warning("redis_sentinels_unanswered", error=str(exc)[:200])
            return
        if (host, port) != self.address:
            raise PrimaryMoved(f"the Sentinels moved the primary to {host}:{port}")

    async def _watch_primary(self) -> None:
        period = self._s.redis_heartbeat_seconds
        while self._running:
            await asyncio.sleep(period)
            await self._check_primary()

    async def _check_role(self) -> None:
        """Read the primary's `ROLE`: note its replicas; end the link once it is no primary.

        Raises:
            PrimaryMoved: the node answers as a replica (demoted, whatever the Sentinels say).
        """
        role: Any = await self.client.role()
        if not role or role[0] != "master":
            raise PrimaryMoved("the node this link is pinned to is no longer a primary")
        # A primary answers ['master', offset, [[host, port, offset], ...]] (ROLE).
        replicas = role[2] if len(role) > 2 else []
        self.replicas = len(replicas)
        self.replicas_in_sync = sum(1 for r in replicas if int(r[2]) > 0)
        self.role_read_at = time.monotonic()
        if self.replicas:
            self.replica_seen = True

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
        while self._running:
            await self._read(block_ms)

    # -- pub/sub: progress notes, markers and producer channels ------------------------

    async def _hear_own_mark(self, subscriptions: int) -> None:
        """Wait until Redis confirms `subscriptions` subscriptions, then publish this link's
        first marker and wait until it comes back on the pub/sub connection.

        Publishing the marker before the SUBSCRIBE is processed (the two travel on different
        connections, and Redis may run the PUBLISH first) would leave the link unable to name
        producer messages until the next heartbeat's marker. Whatever else is heard
        meanwhile is handled in order, as `_listen` would.

        Raises:
            TimeoutError: not done within `redis_timeout_seconds` (the link is retried).
            RedisError, OSError: Redis failed.
        """
        deadline = time.monotonic() + self._s.redis_timeout_seconds
        confirmed = 0
        mark: str | None = None
        while mark is None or self._marks.current != mark:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Redis did not confirm the subscriptions and first marker")
            message = await self._pubsub.get_message(timeout=min(left, _LISTEN_POLL_SECONDS))
            if message is None:
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
            else:
                await self._handle(message)
            if mark is None and confirmed >= subscriptions:
                mark = await self._publish_mark()

    async def _listen(self) -> None:
        while self._running:
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=_LISTEN_POLL_SECONDS
            )
            if message is not None:
                await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        """One pub/sub message: a PONG, a progress note, a marker or a producer message."""
        if message["type"] == "pong":
            self._last_pong = time.monotonic()
        elif message["channel"] == self.key(self.epoch, "progress"):
            with contextlib.suppress(ValueError):  # a malformed note confirms nothing
                instance, notes = parse_progress(message["data"])
                if instance != self.instance_id:
                    self._acks.record(instance, notes)
        elif message["channel"] == self.key(self.epoch, "marks"):
            self._marks.mark(message["data"])
        elif message["type"] in ("message", "pmessage"):
            # Named before it is validated: every instance must count the same messages.
            name = self._marks.name()
            await self._republish(message["channel"], message["data"], name)

    async def _republish(self, channel: str, payload: str, name: str | None) -> None:
        """Append one producer message unless another instance has (see `marks`).

        Raises:
            LinkStale: this instance went too long without a heartbeat; the link must end.
            RedisError, OSError: Redis failed; the link must end.
        """
        dropped = self._metrics.producer_dropped
        try:
            routed = route(
                channel,
                payload,
                self._s.max_inbound_message_bytes,
                max_depth=self._s.max_json_depth,
            )
        except ValueError:
            dropped.labels("invalid").inc()
            return
        if name is None:
            dropped.labels("unnamed").inc()
            return
        try:
            n = await self.append(
                routed.subscription,
                routed.type,
                routed.data,
                routed.correlation_id or self._new_id(),
                self._clock(),
                once=name,
            )
        except (RedisError, OSError):
            dropped.labels("redis_failed").inc()
            raise
        if n == STALE:
            dropped.labels("stale").inc()
            raise LinkStale("no heartbeat for too long to republish; rejoining")
        self._metrics.producer_messages.labels("duplicate" if n == DUPLICATE else "appended").inc()

    async def _publish_mark(self) -> str:
        """Publish this link's next marker; return it."""
        self._marks_sent += 1
        mark = f"{self._mark_prefix}.{self._marks_sent}"
        await self.client.publish(self.key(self.epoch, "marks"), mark)
        return mark

    # -- heartbeat ---------------------------------------------------------------------

    async def _beat(self, *, joining: bool = False) -> None:
        """Renew this instance's liveness; refresh the live set.

        Raises:
            LinkStale: not `joining`, and the previous beat is too old (see `LinkStale`).
            RedisError, OSError: Redis failed.
        """
        ttl_ms = int(self._s.redis_liveness_seconds * _MS_PER_SECOND)
        stale_ms = int(self._s.redis_producer_dedupe_seconds * _MS_PER_SECOND) // _STALE_PER_DEDUPE
        try:
            live = await self._heartbeat(
                keys=[
                    self.key("epoch"),
                    self.key(self.epoch, "instances"),
                    self.key(self.epoch, "beats"),
                ],
                args=[self.epoch, self.instance_id, ttl_ms, "1" if joining else "0", stale_ms],
            )
        except RedisError as exc:
            if str(exc).startswith("HIVESTALE"):
                raise LinkStale(str(exc)) from None
            raise
        self._acks.set_live(live)

    async def _beat_forever(self) -> None:
        period = self._s.redis_heartbeat_seconds
        while self._running:
            await asyncio.sleep(period)
            await self._beat()
            await self._check_role()
            # Each heartbeat is also a marker, so that names keep being agreed on.
            await self._publish_mark()
            # A pub/sub connection can die silently (a proxy or NAT drops it) while the
            # others work. Unchecked, the instance would stop hearing producers and progress
            # notes while reporting healthy: the "deaf node".
            await self._pubsub.ping()
            if time.monotonic() - self._last_pong > period + self._s.redis_timeout_seconds:
                raise ConnectionError("the pub/sub connection stopped answering PING")
