"""Load generators: client processes that each hold many connections to a server under test.

A `Crowd` is a set of worker processes spawned from the benchmark. Every worker opens its
share of the connections (bounded concurrency, from its own loopback source address so that
tens of thousands of sockets never run out of ephemeral ports), then obeys commands sent
over a pipe: `reset` the counters, `flood` pings for a bounded time, `collect` the results,
`close`. While running, each reading worker publishes the lowest update count among its
connections into shared memory, which is how a max-rate publisher knows how far the
slowest reader is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .wire import HIST_BINS, OP_TEXT, Subscriber, client_frame, handshake_request

__all__ = ["Crowd", "WorkerSpec", "merge", "raise_fd_limit"]

READY_TIMEOUT_SECONDS = 120.0
"""Longest the workers may take to open every connection (10,000 on a loaded 2-core box)."""
COMMAND_TIMEOUT_SECONDS = 30.0
"""Longest a worker may take to acknowledge `reset` or `flood`, in seconds."""
COLLECT_TIMEOUT_SECONDS = 60.0
"""Longest a worker may take to send its results, in seconds."""
CLOSE_GRACE_SECONDS = 10.0
"""Time a worker has to end after `close` before it is killed, in seconds."""
_FLOOD_BATCH = 20  # pings sent per wake-up: fewer wake-ups, same average rate
_RECONNECT_PAUSE_SECONDS = (
    0.05  # before retrying a refused reconnect, so a down server is not hammered
)

#: How often a reading worker refreshes its slowest-connection count (seconds).
PROGRESS_PERIOD = 0.003
#: A count no real phase reaches: what workers that do not read report as their progress.
NOT_READING = 1 << 62
_PING = client_frame(OP_TEXT, b'{"type":"ping"}')


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit.

    Each connection is a file descriptor; the usual soft limit (1,024) would refuse the
    1,025th connection long before the server under test runs out of anything.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process does.

    Attributes:
        port: the server's port on 127.0.0.1.
        target: the WebSocket path and query.
        connections: how many connections this worker opens.
        mode: `read` (count and time every update), `stall` (stop reading once open) or
            `flood` (send ping frames on command, reconnecting when cut off).
        sample_every: record the latency of one update in this many per connection.
        connect_concurrency: handshakes in flight at once.
        connect_timeout: seconds one handshake may take before it counts as an error.
        flood_rate: ping frames per second per flooding connection.
        timeline: record the arrival time of every sampled update on the first connection.
    """

    port: int
    target: str
    connections: int
    mode: str = "read"
    sample_every: int = 1
    connect_concurrency: int = 100
    connect_timeout: float = 20.0
    flood_rate: float = 2_000.0
    timeline: bool = False


class _Worker:
    def __init__(self, spec: WorkerSpec, pipe: Connection, progress: Any, slot: int) -> None:
        self.spec = spec
        self.pipe = pipe
        self.progress = progress
        self.slot = slot
        self.hist = [0] * HIST_BINS
        self.conns: list[Subscriber] = []
        self.errors: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()
        self.flood_sent = 0
        self.reconnects = 0
        self.cpu_mark = time.process_time()
        # Each worker uses its own 127.x.y.z source address (all of 127/8 is loopback on
        # Linux), so several 10,000-connection runs in a row never exhaust the ~28,000
        # ephemeral ports of one address while old sockets sit in TIME_WAIT.
        rng = random.Random()
        self.source = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def _count_close(self, code: int) -> None:
        self.closes[code] += 1

    async def connect(self) -> Subscriber:
        loop = asyncio.get_running_loop()
        request = handshake_request("127.0.0.1", self.spec.port, self.spec.target)
        _, conn = await loop.create_connection(
            lambda: Subscriber(request, self.hist, self.spec.sample_every, self._count_close),
            "127.0.0.1",
            self.spec.port,
            local_addr=(self.source, 0),
        )
        try:
            await asyncio.wait_for(conn.opened, self.spec.connect_timeout)
        except BaseException:
            conn.stall()
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return conn

    async def open_all(self) -> None:
        gate = asyncio.Semaphore(self.spec.connect_concurrency)

        async def one() -> None:
            async with gate:
                try:
                    conn = await self.connect()
                except (TimeoutError, OSError) as exc:
                    self.errors[type(exc).__name__ + (f": {exc}" if str(exc) else "")] += 1
                    return
                if self.spec.mode == "stall":
                    conn.stall()
                if self.spec.timeline and not self.conns:
                    conn.timeline = []
                self.conns.append(conn)

        await asyncio.gather(*(one() for _ in range(self.spec.connections)))

    async def report_progress(self) -> None:
        reading = self.spec.mode == "read"
        while True:
            conns = self.conns
            if reading and conns:
                self.progress[self.slot] = min(c.count for c in conns)
            await asyncio.sleep(PROGRESS_PERIOD)

    async def flood(self, seconds: float) -> None:
        """Each connection sends pings at `flood_rate` for `seconds`, reconnecting when cut."""
        batch = _FLOOD_BATCH
        pause = batch / self.spec.flood_rate
        deadline = time.monotonic() + seconds

        async def one(index: int) -> None:
            while time.monotonic() < deadline:
                conn = self.conns[index]
                if conn.closed.done():
                    try:
                        conn = self.conns[index] = await self.connect()
                    except (TimeoutError, OSError):
                        await asyncio.sleep(_RECONNECT_PAUSE_SECONDS)
                        continue
                    self.reconnects += 1
                await conn.writable.wait()
                if conn.transport is not None and not conn.transport.is_closing():
                    conn.transport.write(_PING * batch)
                    self.flood_sent += batch
                await asyncio.sleep(pause)

        await asyncio.gather(*(one(i) for i in range(len(self.conns))))

    def results(self) -> dict[str, Any]:
        counts = [c.count for c in self.conns]
        firsts = [c.first_at for c in self.conns if c.first_at]
        return {
            "mode": self.spec.mode,
            "connected": len(self.conns),
            "connect_errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(5)),
            "counts": counts,
            "open": sum(1 for c in self.conns if not c.closed.done()),
            "gaps": sum(c.gaps for c in self.conns),
            "disorder": sum(c.disorder for c in self.conns),
            "first_at": min(firsts, default=0.0),
            "last_at": max((c.last_at for c in self.conns), default=0.0),
            "hist": {i: n for i, n in enumerate(self.hist) if n},
            "closes": dict(self.closes),
            "flood_sent": self.flood_sent,
            "reconnects": self.reconnects,
            "cpu_seconds": time.process_time() - self.cpu_mark,
            "timelines": [c.timeline for c in self.conns[:1] if c.timeline is not None],
        }

    def reset(self, sample_every: int) -> None:
        for conn in self.conns:
            conn.reset()
            conn.sample_every = sample_every
        self.hist[:] = [0] * HIST_BINS
        self.closes.clear()
        self.flood_sent = self.reconnects = 0
        self.cpu_mark = time.process_time()

    async def main(self) -> None:
        self.progress[self.slot] = 0 if self.spec.mode == "read" else NOT_READING
        await self.open_all()
        reporter = asyncio.create_task(self.report_progress())
        flood: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        self.pipe.send(("ready", self.results()))
        while True:
            command, *args = await commands.get()
            if command == "reset":
                self.reset(int(args[0]))
                self.pipe.send(("ok", None))
            elif command == "flood":
                flood = asyncio.create_task(self.flood(float(args[0])))
                self.pipe.send(("ok", None))
            elif command == "collect":
                if flood is not None:
                    await flood
                self.pipe.send(("results", self.results()))
            elif command == "close":
                break
        reporter.cancel()
        loop.remove_reader(self.pipe.fileno())
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.abort()
        self.pipe.send(("closed", None))


def _run(spec: WorkerSpec, pipe: Connection, progress: Any, slot: int) -> None:
    import uvloop  # the same event loop uvicorn uses for the servers

    raise_fd_limit()
    uvloop.run(_Worker(spec, pipe, progress, slot).main())


class Crowd:
    """Worker processes holding connections to one or more servers; lives in the benchmark.

    Args:
        specs: one `WorkerSpec` per process.
    """

    def __init__(self, specs: Sequence[WorkerSpec]) -> None:
        ctx = mp.get_context("spawn")
        self.specs = list(specs)
        self.progress = ctx.Array("q", len(specs), lock=False)
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for slot, spec in enumerate(specs):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_run, args=(spec, theirs, self.progress, slot), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    @classmethod
    def spread(
        cls, ports: Sequence[int], target: str, total: int, processes: int, **kw: Any
    ) -> Crowd:
        """`total` connections over `processes` workers, the workers spread over `ports`."""
        processes = max(1, min(processes, total))
        share = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        return cls(
            [WorkerSpec(ports[i % len(ports)], target, n, **kw) for i, n in enumerate(share) if n]
        )

    def _ask(self, *command: Any, timeout: float) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [self._reply(pipe, timeout) for pipe in self.pipes]

    def _reply(self, pipe: Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a load-generator worker did not answer within {timeout} s")
        _kind, body = pipe.recv()
        return body

    def ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Wait until every worker has opened its connections; return merged results."""
        return merge([self._reply(pipe, timeout) for pipe in self.pipes])

    def reset(self, sample_every: int = 1) -> None:
        """Zero every counter and histogram; then time one update in `sample_every`."""
        self._ask("reset", sample_every, timeout=COMMAND_TIMEOUT_SECONDS)
        for slot, spec in enumerate(self.specs):
            if spec.mode == "read":
                self.progress[slot] = 0

    def flood(self, seconds: float) -> None:
        """Start flooding (flood workers) for `seconds`."""
        self._ask("flood", seconds, timeout=COMMAND_TIMEOUT_SECONDS)

    def collect(self, timeout: float = COLLECT_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Every worker's results, merged."""
        return merge(self._ask("collect", timeout=timeout))

    def slowest(self) -> int:
        """The lowest update count of any reading connection right now."""
        return min(self.progress)

    def close(self) -> None:
        """Close every connection and end the workers (bounded)."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for proc in self.procs:
            proc.join(CLOSE_GRACE_SECONDS)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up the results of several workers (histograms bin by bin)."""
    hist: Counter[int] = Counter()
    closes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for part in parts:
        hist.update(part["hist"])
        closes.update(part["closes"])
        errors.update(part["error_kinds"])
    firsts = [p["first_at"] for p in parts if p["first_at"]]
    return {
        "connected": sum(p["connected"] for p in parts),
        "connect_errors": sum(p["connect_errors"] for p in parts),
        "error_kinds": dict(errors.most_common(5)),
        "counts": [n for p in parts for n in p["counts"]],
        "open": sum(p["open"] for p in parts),
        "gaps": sum(p["gaps"] for p in parts),
        "disorder": sum(p["disorder"] for p in parts),
        "first_at": min(firsts, default=0.0),
        "last_at": max((p["last_at"] for p in parts), default=0.0),
        "hist": dict(hist),
        "closes": dict(closes),
        "flood_sent": sum(p["flood_sent"] for p in parts),
        "reconnects": sum(p["reconnects"] for p in parts),
        "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
        "timelines": [t for p in parts for t in p["timelines"]],
    }
