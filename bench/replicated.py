"""What waiting for a replica costs a publish: `python -m bench.replicated [--publishes N]`.

A Redis primary with one replica (both private, on loopback), and two reference servers
sharing it: the baseline acknowledges what the primary holds (`WS_REDIS_WAIT_REPLICAS=0`),
the other waits for the replica (`WAIT 1`, as with Sentinel). One publisher POSTs to them in
alternation, one publish at a time, so both see the same machine at the same moment; the
figures are the latency percentiles of each and their ratio (replicated / baseline), in
the same run. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence

import httpx

from tests.procs import ServerProcess, start_redis, start_server

__all__ = ["main", "measure"]

_SETTINGS = {"WS_LOG_LEVEL": "warning"}
_PATH = "/api/dashboard/websocket/broadcast?subscription=agents"
_WARMUP = 20
_MS = 1000.0
_P99 = 0.99


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * _MS, 3),
        "p99_ms": round(ordered[int(len(ordered) * _P99) - 1] * _MS, 3),
    }


def measure(publishes: int) -> dict[str, object]:
    """Publish `publishes` updates through each server; return latencies and ratios.

    Raises:
        RuntimeError: a publish was refused (a replica that does not keep up is a failed
            run, not a figure).
    """
    primary = start_redis()
    replica = start_redis(replica_of=primary.port)
    servers: list[ServerProcess] = []
    try:
        base = {"REDIS_URL": primary.url, **_SETTINGS}
        servers.append(start_server({**base, "WS_REDIS_WAIT_REPLICAS": "0"}))
        servers.append(start_server({**base, "WS_REDIS_WAIT_REPLICAS": "1"}))
        took: list[list[float]] = [[], []]
        with httpx.Client(timeout=10.0) as http:
            for n in range(_WARMUP + publishes):
                for i, server in enumerate(servers):
                    started = time.perf_counter()
                    reply = http.post(server.http + _PATH, json={"n": n})
                    elapsed = time.perf_counter() - started
                    if reply.status_code != httpx.codes.OK:
                        raise RuntimeError(f"publish refused: {reply.status_code} {reply.text}")
                    if n >= _WARMUP:
                        took[i].append(elapsed)
    finally:
        for server in servers:
            server.stop()
        replica.stop()
        primary.stop()
    baseline, replicated = (_percentiles(t) for t in took)
    return {
        "publishes": publishes,
        "baseline_wait_0": baseline,
        "replicated_wait_1": replicated,
        "ratio_p50": round(replicated["p50_ms"] / baseline["p50_ms"], 3),
        "ratio_p99": round(replicated["p99_ms"] / baseline["p99_ms"], 3),
        "added_p50_ms": round(replicated["p50_ms"] - baseline["p50_ms"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.replicated", description=__doc__)
    parser.add_argument("--publishes", type=int, default=500, help="publishes per server")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.publishes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
