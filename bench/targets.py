"""The servers under test, each started as its own process on a free loopback port.

`start(name)` returns a `Target`: where its subscribers connect, how updates are published
to it, how many subscribers it counts, and its processes (for memory and CPU readings).
Ours runs through `tests.procs.start_server`, the same launcher the integration tests use,
with the in-process broker or with `REDIS_URL` pointing at a private `redis-server`; the
baselines start, wait and stop through `docs_automation.processes`, like every process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docs_automation import processes
from tests.procs import ROOT, WS_PATH, RedisProcess, start_redis, start_server

__all__ = ["BASELINES", "TARGETS", "Target", "cpu_seconds", "rss_bytes", "start"]

#: Every server under test, in table order.
TARGETS = (
    "ours",
    "ours-redis-1",
    "ours-redis-3",
    "bare-websockets",
    "bare-fastapi",
    "floor",
    "floor-turn",
)
BASELINES = ("bare-websockets", "bare-fastapi", "floor", "floor-turn")
#: The module and extra arguments of each baseline.
_BASELINE_COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bare-websockets": ("bench.baseline_websockets", ()),
    "bare-fastapi": ("bench.baseline_fastapi", ()),
    "floor": ("bench.baseline_floor", ()),
    "floor-turn": ("bench.baseline_floor", ("--per-turn",)),
}
OUR_PUBLISH = "/api/dashboard/websocket/broadcast?subscription=agents"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc CPU times count these ticks per second
READY_TIMEOUT_SECONDS = 20.0
"""Longest a baseline server may take to answer /stats after it starts, in seconds."""
STOP_GRACE_SECONDS = 15.0
"""Time a baseline server has to exit after SIGTERM before SIGKILL, in seconds."""
HTTP_TIMEOUT_SECONDS = 5.0
"""Longest one stats request may take, in seconds."""
SUBSCRIBERS_TIMEOUT_SECONDS = 60.0
"""Default longest wait for every subscriber to be counted, in seconds."""
_POLL_SECONDS = 0.1  # between two stats requests while subscribers connect


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # /proc reports VmRSS in KiB
    raise RuntimeError(f"process {pid} reports no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used, in seconds."""
    # /proc/PID/stat: the command may contain spaces, so split after its closing ')'.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # proc(5): utime, stime


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
        return json.loads(response.read())


@dataclass
class Target:
    """A running server under test (one or more processes).

    Attributes:
        name: one of `TARGETS`.
        ports: the port of each instance.
        ws_target: path and query a subscriber connects to.
        publish_kind: `http` (POST the data to `publish_path`) or `ws` (send it as a text
            message on a WebSocket to `publish_path`).
        publish_path: where updates are published, on every instance's port.
        pids: the server processes (Redis excluded).
        redis: the private `redis-server`, for the Redis variants.
    """

    name: str
    ports: list[int]
    ws_target: str
    publish_kind: str
    publish_path: str
    pids: list[int]
    redis: RedisProcess | None = None
    _stop: list[Any] = field(default_factory=list)

    def subscribers(self) -> int:
        """Subscribers of the `agents` subscription, summed over instances."""
        total = 0
        for port in self.ports:
            stats = _get_json(f"http://127.0.0.1:{port}{self._stats_path}")
            total += stats["subscriptions"]["agents"] if self.ours else stats["subscribers"]
        return total

    def wait_for_subscribers(
        self, expected: int, timeout: float = SUBSCRIBERS_TIMEOUT_SECONDS
    ) -> int:
        """Poll until `expected` subscribers are counted (or `timeout`); return the count."""
        deadline = time.monotonic() + timeout
        seen = self.subscribers()
        while seen != expected and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            seen = self.subscribers()
        return seen

    @property
    def ours(self) -> bool:
        return self.name.startswith("ours")

    @property
    def _stats_path(self) -> str:
        return "/api/dashboard/websocket/stats" if self.ours else "/stats"

    def rss(self) -> int:
        """Resident memory of all server processes, in bytes."""
        return sum(rss_bytes(pid) for pid in self.pids)

    def cpu(self) -> float:
        """CPU seconds used so far by all server processes."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    def stop(self) -> None:
        """Stop every process of this target (and its Redis)."""
        for stop in reversed(self._stop):
            stop()
        if self.redis is not None:
            self.redis.stop()


def _start_baseline(
    module: str, args: tuple[str, ...] = (), timeout: float = READY_TIMEOUT_SECONDS
) -> tuple[subprocess.Popen[bytes], int]:
    """Start baseline `module` on a free port; wait (up to `timeout` s) for its /stats."""
    port = processes.free_port()
    log = Path(tempfile.mkstemp(prefix=f"hive-{module.rsplit('.', 1)[1]}-", suffix=".log")[1])
    return processes.spawn(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=ROOT,
        log=log,
        timeout=timeout,
        url=f"http://127.0.0.1:{port}/stats",
        what=module,
    ), port


def start(name: str, env: dict[str, str] | None = None) -> Target:
    """Start the server under test `name` (one of `TARGETS`) and wait until it answers.

    Args:
        name: which server.
        env: extra `WS_*` settings for ours.

    Raises:
        ValueError: `name` is not a known target.
        RuntimeError: a process did not start (with its log).
    """
    if name in BASELINES:
        module, args = _BASELINE_COMMANDS[name]
        proc, port = _start_baseline(module, args)
        if name != "bare-fastapi":  # a publisher WebSocket, like bare websockets'
            target = Target(name, [port], "/", "ws", "/publish", [proc.pid])
        else:
            target = Target(name, [port], "/ws", "http", "/publish", [proc.pid])
        target._stop.append(lambda: processes.stop(proc, grace=STOP_GRACE_SECONDS))
        return target
    if name == "ours":
        redis, instances = None, 1
    elif name.startswith("ours-redis-"):
        redis, instances = start_redis(), int(name.removeprefix("ours-redis-"))
    else:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    target = Target(name, [], WS_PATH + "?subscriptions=agents", "http", OUR_PUBLISH, [], redis)
    try:
        for _ in range(instances):
            server = start_server({**(env or {}), **({"REDIS_URL": redis.url} if redis else {})})
            target.ports.append(server.port)
            target.pids.append(server.proc.pid)
            target._stop.append(server.stop)
    except BaseException:
        target.stop()
        raise
    return target
