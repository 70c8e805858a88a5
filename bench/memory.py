"""Where an idle connection's bytes go: `python -m bench.memory [--connections N]`.

Runs the reference server in this process under `tracemalloc` (default settings, uvicorn
with the same protocols as `python -m reference_server`), opens N idle subscribers from
load-generator processes (their memory is not traced), and compares a snapshot taken with
the connections open to one taken before. Each allocation still alive is charged to the
innermost frame of its traceback inside a project or library module (reference_server,
starlette, fastapi, uvicorn, websockets, asyncio, ...), so the table reads "who asked for
the bytes", per connection. tracemalloc counts Python allocations only: the kernel's socket
buffers and uvloop's C structures are in the resident memory that `bench.fanout` measures,
not here.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
import tracemalloc
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import uvicorn

from docs_automation.processes import free_port
from reference_server.__main__ import uvicorn_config
from reference_server.app import WS_PATH, create_app
from reference_server.logs import configure_logging
from reference_server.settings import Settings

from .loadgen import Crowd, raise_fd_limit

__all__ = ["attribute", "main", "measure"]

#: Frames deeper than this are not recorded (tracemalloc's traceback limit).
TRACEBACK_FRAMES = 30
#: Longest wait for the server to start and for the subscribers to be counted, in seconds.
READY_TIMEOUT_SECONDS = 60.0
#: Pause after the connections open, before the snapshot, in seconds.
SETTLE_SECONDS = 1.0
_POLL_SECONDS = 0.1
#: Path fragments naming the owner of an allocation, innermost match wins; the first in
#: this list that matches a frame names it.
OWNERS = (
    "reference_server/",
    "starlette/",
    "fastapi/",
    "uvicorn/",
    "websockets/",
    "asyncio/",
    "structlog/",
    "prometheus_client/",
)


def attribute(frames: Sequence[tracemalloc.Frame], owners: Sequence[str] = OWNERS) -> str:
    """`module:line` of the innermost frame inside one of `owners`, or the innermost frame.

    Args:
        frames: a traceback, most recent call last (tracemalloc's order).
        owners: path fragments that may own an allocation.
    """
    for frame in reversed(frames):
        for owner in owners:
            at = frame.filename.rfind(owner)
            if at >= 0:
                return f"{frame.filename[at:]}:{frame.lineno}"
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"


def _subscribers(port: int) -> int:
    url = f"http://127.0.0.1:{port}/api/dashboard/websocket/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(json.loads(response.read())["subscriptions"]["agents"])


def _wait(port: int, expected: int) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            seen = _subscribers(port)
        except OSError:
            seen = -1
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(_POLL_SECONDS)


def measure(connections: int, processes: int = 2) -> dict[str, Any]:
    """Open `connections` idle subscribers; return bytes per connection by owner.

    Returns:
        `{"connections", "traced_bytes_per_connection", "owners": [[where, bytes per
        connection, blocks per connection], ...]}`, largest first.
    """
    port = free_port()
    settings = Settings(port=port, log_level="warning")
    app = create_app(settings)
    config = uvicorn_config(settings, app)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    tracemalloc.start(TRACEBACK_FRAMES)
    thread.start()
    try:
        if _wait(port, 0) != 0:
            raise RuntimeError("the server did not start")
        # A few connections first, so first-use costs (imports, caches) are in the baseline.
        warm = Crowd.spread([port], WS_PATH + "?subscriptions=agents", 20, processes=1)
        warm.ready()
        _wait(port, 20)
        warm.close()
        _wait(port, 0)
        time.sleep(SETTLE_SECONDS)
        gc.collect()
        before = tracemalloc.take_snapshot()
        crowd = Crowd.spread(
            [port], WS_PATH + "?subscriptions=agents", connections, processes=processes
        )
        try:
            crowd.ready()
            seen = _wait(port, connections)
            time.sleep(SETTLE_SECONDS)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            crowd.close()
    finally:
        tracemalloc.stop()
        server.should_exit = True
        thread.join(timeout=30)
    n = max(1, seen)
    stats = after.compare_to(before, "traceback")

    def table(owners: Sequence[str]) -> list[list[Any]]:
        sizes: dict[str, int] = defaultdict(int)
        blocks: dict[str, int] = defaultdict(int)
        for stat in stats:
            where = attribute(list(stat.traceback), owners)
            sizes[where] += stat.size_diff
            blocks[where] += stat.count_diff
        ordered = sorted(sizes, key=lambda w: -sizes[w])
        return [[w, round(sizes[w] / n), round(blocks[w] / n, 2)] for w in ordered]

    return {
        "connections": seen,
        "traced_bytes_per_connection": round(sum(s.size_diff for s in stats) / n),
        "owners": table(OWNERS),
        # The same bytes charged to the innermost line of ours that led to them.
        "ours": table(("reference_server/",)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the owners of an idle connection's bytes, largest first."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--connections", type=int, default=2_000, help="idle subscribers")
    parser.add_argument("--top", type=int, default=25, help="owners printed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    raise_fd_limit()
    configure_logging("warning", repeat_window_seconds=Settings().log_repeat_window_seconds)
    result = measure(args.connections)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"{result['connections']:,} idle connections: "
        f"{result['traced_bytes_per_connection']:,} traced bytes each"
    )
    for key, title in (("owners", "allocated at"), ("ours", "caused by our line")):
        print(f"\n| {title} | bytes/connection | blocks/connection |\n| --- | --- | --- |")
        for where, size, count in result[key][: args.top]:
            print(f"| `{where}` | {size:,} | {count:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
