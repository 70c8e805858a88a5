"""The Redis broker: fan-out across instances through Redis Streams, surviving Redis failures.

Every instance appends to one Redis stream per subscription and reads every stream with
`XREAD BLOCK`, so each update reaches every instance once, in stream order. Streams, unlike
pub/sub, keep what an instance has not read yet while it reconnects.
`docs/explanation/redis-fanout.md` gives the measurements behind that choice.

**Seq and epochs.** `seq` is `epoch + n`, where `n` counts the entries of the subscription's
stream and the epoch is stored in Redis. When Redis comes back empty (restarted without
persistence), its counters are gone: the first instance to reconnect starts a new epoch
above every earlier seq (`link`), and every instance sends its subscribers
`resync_required` (`feed`). A seq is therefore never reused for a different update.

**Failures.** One supervisor task makes a `RedisLink` (join, subscribe, heartbeat, catch
up), then runs it (read, listen and heartbeat concurrently). Anything that fails in any
part ends the whole link; the supervisor waits a full-jitter backoff and makes a new one.
No half-alive state exists in which a listener is gone while health says connected.

**Publishes** are acknowledged only once `redis_replicas_to_confirm` replicas hold them
(`WAIT`, see `link`) and every live instance has read them (`acks`), so neither a Redis
crash nor a failover to a replica can take an acknowledged update from any subscriber.
While Redis is unreachable they are refused with `BrokerUnavailable` (HTTP 503 +
Retry-After). Nothing is buffered: a buffered publish would be acknowledged before Redis had
it, and lost with the instance.

**Producer messages** are republished by every instance that hears them; Redis appends
each once (`marks`, `link`), so no single instance's death or stall loses one.

**Closing** is bounded: every step waits at most `redis_timeout_seconds`, and a step that
overruns is abandoned rather than awaited (see `link` for why cancellation alone is not
enough on Python 3.11).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from ..errors import BrokerUnavailable
from ..logs import get_logger
from ..messages import IdFactory
from ..metrics import Metrics
from ..settings import Settings
from .acks import Acks
from .backoff import Backoff
from .base import BrokerStatus, Deliver, History, Update, make_update
from .feed import Feed
from .link import NotReplicated, RedisLink, finish_within

__all__ = ["RedisBroker"]

# `start` waits this many Redis timeouts for the first link (connect, join, subscribe,
# catch up: a few round trips each) before the instance starts degraded.
_FIRST_LINK_TIMEOUTS = 4
# `close` waits this many Redis timeouts for the supervisor to end: stopping the link's
# tasks, then closing its connections under any still stuck, then the link's close.
_STOP_TIMEOUTS = 4
MIN_RETRY_AFTER_SECONDS = 1
"""The shortest Retry-After sent with a 503, in seconds: HTTP counts whole seconds
(RFC 9110 §10.2.3), and 0 would invite an immediate retry of a broker that is down."""
# `history` checks this often whether this instance has read up to a resume's position.
_CATCH_UP_POLL_SECONDS = 0.005
# `/health` shows the last error truncated to this many characters.
_ERROR_CHARS = 300


def _describe(exc: BaseException) -> str:
    # A link's TaskGroup wraps the failure that ended it; name that failure, not the group.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


class RedisBroker:
    """A `Broker` shared by every instance connected to one Redis.

    Args:
        settings: `redis_url` or `redis_sentinels`, and the `redis_*` and `history_*`
            settings are used.
        metrics: `broker_up`, `broker_reconnect_attempts` and `publishes_unreplicated` are
            updated.
        instance_id: this instance's id in Redis, unique among the instances sharing it.
        rng: random source of the reconnect jitter.
        new_id: makes correlation ids (resync notices, producer messages without one).
        sleep: awaited for each reconnect delay (tests pass one that records).
        clock: wall-clock source in seconds since the epoch.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        instance_id: str,
        rng: random.Random,
        new_id: IdFactory,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._metrics = metrics
        self._sleep = sleep
        self._clock = clock
        self._new_id = new_id
        self.instance_id = instance_id
        self._backoff = Backoff(
            settings.redis_backoff_base_seconds, settings.redis_backoff_cap_seconds, rng
        )
        self._feed = Feed(
            history_max_messages=settings.history_max_messages,
            history_max_age_seconds=settings.history_max_age_seconds,
            new_id=new_id,
        )
        self._acks = Acks(self.instance_id)
        self._log = get_logger(instance=self.instance_id)
        self._deliver: Deliver | None = None
        self._task: asyncio.Task[None] | None = None
        # The link while it is up (joined, caught up, heartbeating); None otherwise.
        self._link: RedisLink | None = None
        self._retry_at = 0.0
        self._last_error = ""
        self._closing = False
        # Sticky: once the primary was seen with a replica (`ROLE`), publishes wait for one
        # even after it goes, so a lost replica never silently unreplicates acknowledgements.
        self._replica_seen = False
        # When the last publish was refused for want of replicas (monotonic s; 0: never),
        # and the first acknowledged since then, or a heartbeat's `ROLE` showing enough
        # replicas in sync: `/health` says degraded in between.
        self._unreplicated_at = 0.0

    # -- Broker ------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect and catch up with the retained history, then keep delivering.

        Returns once the first attempt has succeeded or failed; when Redis is unreachable
        the instance starts degraded and keeps retrying in the background.
        """
        self._deliver = deliver
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._supervise(first), name="redis-broker")
        # Bounded even if Redis accepts connections and then hangs mid-catch-up.
        await asyncio.wait({first}, timeout=_FIRST_LINK_TIMEOUTS * self._s.redis_timeout_seconds)

    async def publish(
        self, subscription: str, message_type: str, data: Mapping[str, Any], correlation_id: str
    ) -> Update:
        """Publish; return once replicas hold the update and every live instance has taken it.

        Raises:
            BrokerUnavailable: Redis is unreachable, fewer than `redis_replicas_to_confirm`
                replicas confirmed it within `redis_wait_timeout_ms` (counted in
                `publishes_unreplicated`), or not every live instance confirmed it within
                `redis_ack_timeout_seconds`. It was not acknowledged; it may still be
                delivered, so a retry can deliver it twice.
        """
        link = self._link
        if link is None:
            raise BrokerUnavailable(
                "Redis is unreachable; the update was not published", self._retry_after()
            )
        wall = self._clock()
        replicas = self._replicas_wanted(link)
        try:
            n = await link.append(
                subscription, message_type, data, correlation_id, wall, replicas=replicas
            )
            self._unreplicated_at = 0.0
            confirmed = self._acks.wait(subscription, n)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # caller's cancellation (CPython gh-86296).
            async with asyncio.timeout(self._s.redis_ack_timeout_seconds):
                await confirmed
        except TimeoutError:
            raise BrokerUnavailable(
                "The update was not confirmed by every instance in time; it may still be delivered",
                self._retry_after(),
            ) from None
        except NotReplicated as exc:
            self._metrics.publishes_unreplicated.inc()
            self._unreplicated_at = time.monotonic()
            if exc.n == 0:
                raise BrokerUnavailable(
                    f"The update reached 0 of {exc.wanted} Redis replicas within "
                    f"{self._s.redis_wait_timeout_ms} ms: {self._s.redis_wait_max_publishes} "
                    "publishes were waiting for replicas all that time; it was not published",
                    float(MIN_RETRY_AFTER_SECONDS),
                ) from None
            raise BrokerUnavailable(
                f"The update reached {exc.confirmed} of {exc.wanted} Redis replicas within "
                f"{self._s.redis_wait_timeout_ms} ms, so a failover could lose it; it was not "
                "acknowledged and may still be delivered",
                float(MIN_RETRY_AFTER_SECONDS),
            ) from None
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"Redis failed during the publish ({type(exc).__name__}); the update may "
                "still be delivered",
                self._retry_after(),
            ) from None
        return make_update(
            subscription,
            message_type,
            data,
            seq=link.epoch + n,
            correlation_id=correlation_id,
            wall=wall,
        )

    def _replicas_wanted(self, link: RedisLink) -> int:
        """Replicas a publish waits for now: the setting, or its topology-following default."""
        self._replica_seen = self._replica_seen or link.replica_seen
        return self._s.redis_replicas_to_confirm(replica_seen=self._replica_seen)

    def _replicated_again(self, link: RedisLink) -> bool:
        """Whether a `ROLE` read after the last refusal shows enough replicas in sync."""
        return (
            self._unreplicated_at > 0
            and link.role_read_at > self._unreplicated_at
            and link.replicas_in_sync >= self._replicas_wanted(link)
        )

    async def history(self, subscription: str, after_seq: int) -> History:
        """This instance's kept updates of `subscription` after `after_seq`.

        Served from memory (every instance reads every update), so it answers at once and
        also while Redis is unreachable. A position this instance has not reached yet (taken
        from another instance a few milliseconds ahead, or made up) is waited for, at most
        `resume_wait_seconds`: the History then covers it, or does not and the resume ends
        in `resync_required`.
        """
        deadline = time.monotonic() + self._s.resume_wait_seconds
        while self._feed.last_seq(subscription) < after_seq and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(_CATCH_UP_POLL_SECONDS)
        return self._feed.history(subscription, after_seq, self._clock())

    def position(self, subscription: str) -> int:
        """The seq of the last update delivered on `subscription` (the epoch's base before
        the first; 0 before the first epoch is joined: nothing is known yet)."""
        return self._feed.last_seq(subscription)

    def status(self) -> BrokerStatus:
        """Connected while a link is up; its epoch, peers and last error for `/health`.

        Also `degraded` while connected, from a publish refused for want of replicas
        until the next acknowledged one, or until the primary's `ROLE` at a heartbeat after
        the refusal lists at least `replicas_to_confirm` replicas in sync.
        """
        link = self._link
        details: dict[str, Any] = {
            "instance": self.instance_id,
            "epoch": self._feed.epoch,
            "live_instances": len(self._acks.live) if link is not None else 0,
            "last_error": self._last_error,
        }
        if link is not None:
            details["replicas"] = link.replicas
            details["replicas_to_confirm"] = self._replicas_wanted(link)
            if link.sentinels is not None:
                details["sentinels_failed"] = dict(link.sentinels.failed)
        degraded = ""
        if link is not None and self._replicated_again(link):
            self._unreplicated_at = 0.0
        if link is not None and self._unreplicated_at > 0:
            degraded = (
                "publishes are refused: fewer than "
                f"{details['replicas_to_confirm']} replicas confirm them"
            )
        return BrokerStatus("redis", link is not None, details, degraded)

    async def close(self) -> None:
        """Leave the live set and disconnect, in at most 5 x `redis_timeout_seconds`.

        Never waits longer, even when Redis hangs: a step that overruns its bound is
        abandoned (and logged), not awaited.
        """
        self._closing = True
        timeout = self._s.redis_timeout_seconds
        link = self._link
        if link is not None:
            await finish_within(timeout, link.leave())
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=_STOP_TIMEOUTS * timeout)
            if not done:
                self._log.warning("redis_close_abandoned", waited_seconds=_STOP_TIMEOUTS * timeout)
        self._deliver = None

    # -- supervisor --------------------------------------------------------------------

    def _retry_after(self) -> float:
        return max(float(MIN_RETRY_AFTER_SECONDS), self._retry_at - time.monotonic())

    def _hand_over(self, update: Update) -> None:
        if self._deliver is not None:
            self._deliver(update)

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        attempt = 0
        me = asyncio.current_task()
        # `_closing` and a pending cancellation (`cancelling()`) end this loop too: a
        # cancellation swallowed inside redis-py (see `link`) must not let it go on.
        while not self._closing and not (me and me.cancelling()):
            link = RedisLink(
                self._s,
                self.instance_id,
                feed=self._feed,
                acks=self._acks,
                deliver=self._hand_over,
                metrics=self._metrics,
                clock=self._clock,
                new_id=self._new_id,
            )
            try:
                await link.open()
                if self._closing or (me and me.cancelling()):
                    break
                self._up(link)
                attempt = 0  # the backoff restarts after every link that got up
                if not first.done():
                    first.set_result(None)
                await link.run()
            except Exception as exc:  # whatever ended the link, this loop must go on
                self._last_error = _describe(exc)
                self._log.warning("redis_link_down", error=self._last_error)
            finally:
                self._replica_seen = self._replica_seen or link.replica_seen
                self._down()
                await link.aclose()
            if not first.done():
                first.set_result(None)
            delay = self._backoff.delay(attempt)
            attempt += 1
            self._retry_at = time.monotonic() + delay
            await self._sleep(delay)
            self._metrics.broker_reconnect_attempts.inc()

    def _up(self, link: RedisLink) -> None:
        self._link = link
        self._last_error = ""
        self._metrics.broker_up.set(1)
        self._log.info("redis_link_up", epoch=link.epoch, live=sorted(self._acks.live))

    def _down(self) -> None:
        self._link = None
        self._metrics.broker_up.set(0)
        # Positions and waiting publishes belonged to the link: nothing can confirm them now.
        self._acks.fail(
            BrokerUnavailable(
                "Redis connection lost before every instance confirmed the update; it may "
                "still be delivered",
                self._retry_after(),
            )
        )
