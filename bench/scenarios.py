"""The measurements. Each takes a running `Target` and a `Plan` and returns plain dicts.

- `fanout`: N subscribers; updates at a fixed rate, then flat out (closed loop), then flat
  out in bursts (each publisher sends several updates at once, as Redis producers do).
  Delivered updates/s, latency percentiles, lost updates, CPU per delivery of server and
  clients.
- `connections`: idle connections in steps up to 10,000; resident memory per connection
  and connect errors.
- `isolation`: fast readers alone, then beside stalled readers, then beside ping flooders,
  then alone again; their latency in each phase.
- `recovery`: Redis killed and restarted under a steady stream of publishes; time until
  updates flow again and the updates lost.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from .loadgen import Crowd
from .publish import (
    HttpPublisher,
    Publisher,
    Tally,
    WsPublisher,
    at_rate,
    bursts,
    drain,
    flat_out,
)
from .targets import Target
from .wire import hist_value

__all__ = ["SMOKE", "Plan", "connections", "fanout", "isolation", "percentiles", "recovery"]

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """Sizes, rates and durations of every measurement (all bounded).

    Attributes:
        subscribers: subscriber counts of the fan-out runs.
        fixed_rate: updates/s of the fixed-rate phase.
        fixed_seconds: length of the fixed-rate phase.
        max_seconds: length of the flat-out phase, and of the burst phase.
        burst: updates each publisher sends at once in the burst phase (one connection
            each).
        processes: load-generator processes per fan-out run.
        publishers: concurrent publishing connections.
        window_deliveries: flat-out updates in flight x subscribers (window =
            this / subscribers, at least 8 updates).
        max_sample_every: flat out, time one update in this many per connection.
        connection_steps: idle-connection totals at which memory is read.
        connections_per_process: idle connections per load-generator process.
        isolation_readers: fast readers whose latency is measured.
        isolation_stalled: readers that stop reading (10 % of all subscribers).
        isolation_flooders: clients that flood pings.
        isolation_rate: updates/s during the isolation phases.
        isolation_seconds: length of each isolation phase.
        flood_rate: pings/s each flooder sends.
        recovery_subscribers: subscribers during the Redis outage.
        recovery_rate: updates/s during the Redis outage run.
        recovery_up_seconds: publishing before the kill and after the restart.
        recovery_down_seconds: how long Redis stays dead.
        drain_seconds: longest wait for the slowest reader after a phase.
        warmup_seconds: flat-out publishing before the measured phases.
        settle_seconds: pause before reading memory after connections open.
    """

    subscribers: tuple[int, ...] = (100, 1_000, 5_000)
    fixed_rate: float = 10.0
    fixed_seconds: float = 6.0
    max_seconds: float = 4.0
    burst: int = 8
    processes: int = 4
    publishers: int = 2
    window_deliveries: int = 40_000
    max_sample_every: int = 10
    connection_steps: tuple[int, ...] = (1_000, 5_000, 10_000)
    connections_per_process: int = 2_500
    # 9,000 deliveries/s: well under what every server sustains on 2 shared cores, so
    # the phases compare interference, not queueing in an overloaded machine.
    isolation_readers: int = 450
    isolation_stalled: int = 50
    isolation_flooders: int = 10
    isolation_rate: float = 20.0
    isolation_seconds: float = 8.0
    flood_rate: float = 2_000.0
    recovery_subscribers: int = 100
    recovery_rate: float = 20.0
    recovery_up_seconds: float = 4.0
    recovery_down_seconds: float = 2.0
    drain_seconds: float = 10.0
    warmup_seconds: float = 1.0
    settle_seconds: float = 1.0

    def window(self, subscribers: int) -> int:
        """Flat-out updates in flight for `subscribers`."""
        return max(8, self.window_deliveries // max(1, subscribers))


#: A few seconds per target: proves the benchmark runs, measures nothing worth quoting.
SMOKE = Plan(
    subscribers=(20,),
    fixed_seconds=0.5,
    max_seconds=0.5,
    burst=4,
    processes=2,
    connection_steps=(50,),
    isolation_readers=18,
    isolation_stalled=2,
    isolation_flooders=2,
    isolation_rate=20.0,
    isolation_seconds=0.5,
    recovery_subscribers=6,
    recovery_up_seconds=0.5,
    recovery_down_seconds=0.5,
    drain_seconds=5.0,
    warmup_seconds=0.2,
    settle_seconds=0.2,
)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


def percentiles(hist: dict[int, int], qs: Sequence[float] = (50, 95, 99)) -> list[float | None]:
    """Latency percentiles in milliseconds from a merged histogram (None when empty)."""
    total = sum(hist.values())
    if not total:
        return [None for _ in qs]
    out: list[float | None] = []
    bins = sorted(hist.items())
    for q in qs:
        rank = math.ceil(total * q / 100)
        seen = 0
        for index, count in bins:
            seen += count
            if seen >= rank:
                out.append(round(hist_value(index) * 1000, 3))
                break
    return out


def summarize(res: dict[str, Any], tally: Tally, server_cpu: float | None = None) -> dict[str, Any]:
    """One phase's figures from the readers' merged results and the publishers' tally."""
    counts = res["counts"]
    delivered = sum(counts)
    span = max(1e-9, (res["last_at"] or time.time()) - tally.started)
    p50, p95, p99 = percentiles(res["hist"])
    return {
        "readers": len(counts),
        "published": tally.acked,
        "publish": tally.as_dict(),
        "delivered": delivered,
        "rate": round(delivered / span),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        # Every reader was subscribed before the first publish, so each must get them all.
        "lost": sum(max(0, tally.acked - n) for n in counts),
        "extra": sum(max(0, n - tally.acked) for n in counts),
        "gaps": res["gaps"],
        "disorder": res["disorder"],
        "closed": res["connected"] - res["open"],
        "server_cpu_us": round(server_cpu / delivered * 1e6, 2)
        if server_cpu and delivered
        else None,
        "client_cpu_us": round(res["cpu_seconds"] / delivered * 1e6, 2) if delivered else None,
        "seconds": round(span, 3),
    }


async def _publishers(target: Target, count: int) -> list[Publisher]:
    pubs: list[Publisher] = []
    for i in range(count):
        port = target.ports[i % len(target.ports)]  # round robin over instances
        kind = WsPublisher if target.publish_kind == "ws" else HttpPublisher
        pub = kind(port, target.publish_path)
        await pub.open()
        pubs.append(pub)
    return pubs


def _join(target: Target, total: int, **spec: Any) -> tuple[Crowd, dict[str, Any]]:
    crowd = Crowd.spread(target.ports, target.ws_target, total, **spec)
    ready = crowd.ready()
    return crowd, ready


def fanout(target: Target, subscribers: int, plan: Plan) -> dict[str, Any]:
    """Fixed-rate then flat-out fan-out to `subscribers` readers."""
    crowd, ready = _join(target, subscribers, processes=plan.processes)
    with crowd:
        seen = target.wait_for_subscribers(ready["connected"])

        async def phases() -> dict[str, Any]:
            pubs = await _publishers(target, plan.publishers)
            window = plan.window(subscribers)
            # Warm-up: first-call costs (imports, caches) stay out of the figures.
            crowd.reset(plan.max_sample_every)
            warm = await flat_out(pubs, plan.warmup_seconds, window, crowd.slowest)
            await drain(warm.acked, crowd.slowest, plan.drain_seconds)

            async def measured(sample_every: int, publish: Awaitable[Tally]) -> dict[str, Any]:
                crowd.reset(sample_every)
                cpu = target.cpu()
                tally = await publish
                await drain(tally.acked, crowd.slowest, plan.drain_seconds)
                return summarize(crowd.collect(), tally, target.cpu() - cpu)

            fixed = await measured(1, at_rate(pubs, plan.fixed_rate, plan.fixed_seconds))
            flat = await measured(
                plan.max_sample_every, flat_out(pubs, plan.max_seconds, window, crowd.slowest)
            )
            flat["window"] = window
            for pub in pubs:
                await pub.close()

            members = await _publishers(target, plan.publishers * plan.burst)
            groups = [members[i :: plan.publishers] for i in range(plan.publishers)]
            # Room for every group's whole burst twice over, whatever the subscriber count.
            room = max(window, 2 * plan.burst * plan.publishers)
            burst = await measured(
                plan.max_sample_every, bursts(groups, plan.max_seconds, room, crowd.slowest)
            )
            burst["window"] = room
            burst["burst"] = plan.burst
            for pub in members:
                await pub.close()
            return {"fixed": fixed, "max": flat, "burst": burst}

        result = _run(phases())
    return {
        "subscribers": subscribers,
        "connected": seen,
        "connect_errors": ready["connect_errors"],
        "error_kinds": ready["error_kinds"],
        **result,
    }


def connections(target: Target, plan: Plan) -> dict[str, Any]:
    """Resident memory per idle connection at each of `plan.connection_steps`."""
    warm, _ = _join(target, 20, processes=1)
    warm.close()
    target.wait_for_subscribers(0)
    time.sleep(plan.settle_seconds)
    base = target.rss()
    crowds: list[Crowd] = []
    steps: list[dict[str, Any]] = []
    opened = errors = 0
    kinds: dict[str, int] = {}
    try:
        for step in plan.connection_steps:
            more = step - opened
            procs = max(1, math.ceil(more / plan.connections_per_process))
            crowd, ready = _join(target, more, processes=procs, connect_concurrency=50)
            crowds.append(crowd)
            opened += ready["connected"]
            errors += ready["connect_errors"]
            for kind, n in ready["error_kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + n
            seen = target.wait_for_subscribers(opened, timeout=30)
            time.sleep(plan.settle_seconds)  # let the handshakes' work finish before RSS
            rss = target.rss()
            steps.append(
                {
                    "target_connections": step,
                    "connections": seen,
                    "connect_errors": errors,
                    "rss_mib": round(rss / 2**20, 1),
                    "kib_per_connection": round((rss - base) / max(1, seen) / 1024, 2),
                }
            )
    finally:
        for crowd in crowds:
            crowd.close()
    return {
        "base_rss_mib": round(base / 2**20, 1),
        "steps": steps,
        "connect_errors": errors,
        "error_kinds": kinds,
    }


def isolation(target: Target, plan: Plan) -> dict[str, Any]:
    """Fast readers' latency alone, beside stalled readers, beside flooders, alone again."""
    readers, ready = _join(target, plan.isolation_readers, processes=plan.processes)
    out: dict[str, Any] = {"connect_errors": ready["connect_errors"]}
    with readers:
        target.wait_for_subscribers(ready["connected"])

        async def phase(others: Crowd | None, flood: bool) -> dict[str, Any]:
            pubs = await _publishers(target, plan.publishers)
            readers.reset(1)
            if others is not None:
                others.reset(1)
                if flood:
                    others.flood(plan.isolation_seconds)
            tally = await at_rate(pubs, plan.isolation_rate, plan.isolation_seconds)
            await drain(tally.acked, readers.slowest, plan.drain_seconds)
            figures = summarize(readers.collect(), tally)
            if others is not None:
                theirs = others.collect()
                figures["others"] = {
                    "closed_by_server": theirs["closes"],
                    "flood_frames_sent": theirs["flood_sent"],
                    "reconnects": theirs["reconnects"],
                }
            for pub in pubs:
                await pub.close()
            return figures

        out["alone"] = _run(phase(None, False))
        for label, mode, count in (
            ("stalled", "stall", plan.isolation_stalled),
            ("flooding", "flood", plan.isolation_flooders),
        ):
            others, _ = _join(target, count, processes=1, mode=mode, flood_rate=plan.flood_rate)
            with others:
                target.wait_for_subscribers(ready["connected"] + count, timeout=10)
                out[label] = _run(phase(others, mode == "flood"))
            target.wait_for_subscribers(ready["connected"], timeout=20)
        out["alone_again"] = _run(phase(None, False))
    return out


def recovery(target: Target, plan: Plan) -> dict[str, Any]:
    """Kill Redis (`kill -9`) mid-stream, restart it, and time the return of updates."""
    if target.redis is None:
        raise ValueError(f"{target.name} has no Redis to kill")
    redis = target.redis
    crowd, ready = _join(
        target, plan.recovery_subscribers, processes=len(target.ports), timeline=True
    )
    with crowd:
        target.wait_for_subscribers(ready["connected"])

        async def run() -> tuple[Tally, float, float]:
            pubs = await _publishers(target, len(target.ports))
            crowd.reset(1)
            seconds = 2 * plan.recovery_up_seconds + plan.recovery_down_seconds
            stream = asyncio.create_task(at_rate(pubs, plan.recovery_rate, seconds))
            await asyncio.sleep(plan.recovery_up_seconds)
            redis.kill()
            down = time.time()
            await asyncio.sleep(plan.recovery_down_seconds)
            await asyncio.to_thread(redis.restart)
            back = time.time()
            tally = await stream
            await drain(tally.acked, crowd.slowest, plan.drain_seconds)
            for pub in pubs:
                await pub.close()
            return tally, down, back

        tally, down, back = _run(run())
        res = crowd.collect()
    # One timeline per load-generator process, each on its own instance.
    firsts = [min((t for t, _ in line if t > back), default=math.inf) for line in res["timelines"]]
    figures = summarize(res, tally)
    figures.update(
        {
            "instances": len(target.ports),
            "down_seconds": round(back - down, 3),
            "first_update_after_back_s": round(min(firsts) - back, 3),
            "every_instance_after_back_s": round(max(firsts) - back, 3),
            "acked": tally.acked,
            "refused": tally.refused,
            "failed": tally.failed,
        }
    )
    return figures
