"""A Redis primary, its replica and three Sentinels, as real processes on loopback ports.

`topology()` starts them and stops them all afterwards. `Topology` says which node is the
primary now (asking a Sentinel, as the instances do), waits for a promotion, and waits until
a node brought back has rejoined as a replica that the Sentinels would promote, so every
chaos round starts from one primary and one replica in sync.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import redis

from tests.procs import RedisProcess, SentinelProcess, start_redis, start_sentinel

__all__ = ["FAILOVER_DOWN_AFTER_MS", "MASTER", "STEADY_DOWN_AFTER_MS", "Topology", "topology"]

MASTER = "hive"
"""The master name the Sentinels monitor."""
SENTINELS = 3
QUORUM = 2
#: Milliseconds without an answer before a Sentinel counts the primary down, for tests that
#: measure how fast a failover goes (as the how-to's demonstration does).
FAILOVER_DOWN_AFTER_MS = 1000
#: The same for every other test: long enough that a primary starved of CPU on a loaded
#: machine (2 cores, load 11) is never failed over unplanned, so a test's model of which
#: node is the primary holds; a killed primary is still replaced within seconds.
STEADY_DOWN_AFTER_MS = 5000
#: Seconds a Sentinel or a Redis node gets to answer one query from the test.
_QUERY_SECONDS = 1.0


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        port=port,
        socket_timeout=_QUERY_SECONDS,
        socket_connect_timeout=_QUERY_SECONDS,
        decode_responses=True,
    )


@dataclass
class Topology:
    """Two Redis nodes (one primary, one replica) and the Sentinels watching them."""

    nodes: list[RedisProcess]
    sentinels: list[SentinelProcess]

    def env(self) -> dict[str, str]:
        """The settings that point a reference server at these Sentinels."""
        return {
            "WS_REDIS_SENTINELS": ",".join(s.address for s in self.sentinels),
            "WS_REDIS_SENTINEL_MASTER": MASTER,
        }

    def primary_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it (None: none does)."""
        for sentinel in self.sentinels:
            if sentinel.proc.poll() is not None:
                continue
            try:
                with _client(sentinel.port) as c:
                    addr = c.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
            except (redis.RedisError, OSError):
                continue
            if addr:
                return int(addr[1])
        return None

    def primary(self) -> RedisProcess:
        port = self.primary_port()
        return next(n for n in self.nodes if n.port == port)

    def other(self, node: RedisProcess) -> RedisProcess:
        return next(n for n in self.nodes if n is not node)

    def wait_promoted(self, node: RedisProcess, within: float) -> float:
        """Wait until every live Sentinel names `node` the primary; return when (monotonic)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(self._named_by(s) == node.port for s in self.sentinels):
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"no promotion of :{node.port} within {within} s")

    def wait_in_sync(self, replica: RedisProcess, within: float) -> None:
        """Wait until `replica` replicates the primary and the Sentinels count it healthy.

        A replica the Sentinels still flag down (`s_down`) or disconnected would not be
        promoted, and the next round's failover would stall.
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._replica_ready(replica):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"replica :{replica.port} not in sync within {within} s: {self._describe(replica)}"
        )

    def _describe(self, replica: RedisProcess) -> str:
        seen: list[object] = []
        with contextlib.suppress(redis.RedisError, OSError):
            with _client(replica.port) as c:
                info = c.info("replication")
            seen.append({k: info.get(k) for k in ("role", "master_port", "master_link_status")})
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError), _client(sentinel.port) as c:
                seen.append(
                    [
                        (r.get("port"), r.get("flags"))
                        for r in map(_pairs, c.execute_command("SENTINEL", "replicas", MASTER))
                    ]
                )
        logs = [s.log.read_text(errors="replace").splitlines()[-12:] for s in self.sentinels[:1]]
        return repr(seen) + "\n" + "\n".join(line for log in logs for line in log)

    def wait_stable(self, within: float) -> RedisProcess:
        """Wait until every Sentinel names one primary that has its replica in sync; return it.

        A fault must hit the node the instances use: a round that started while the
        Sentinels were still switching would fault a replica.
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            named = {self._named_by(s) for s in self.sentinels}
            if len(named) == 1 and None not in named:
                primary = next((n for n in self.nodes if n.port in named), None)
                if primary is not None and self._replica_ready(self.other(primary)):
                    return primary
            time.sleep(0.1)
        raise AssertionError(f"no stable primary within {within} s")

    def switches(self) -> int:
        """How many times the first Sentinel moved the primary (`+switch-master`)."""
        return len(self.switch_times())

    def switch_times(self) -> list[float]:
        """When the first Sentinel logged each `+switch-master` to another node, as
        `time.monotonic()` seconds.

        Sentinel stamps its log lines with the wall clock to the millisecond
        (`29 Nov 2026 18:16:26.578`, local time); they are mapped onto the monotonic clock with the
        offset between the two clocks now, so the figures are good to a few milliseconds.
        """
        offset = time.time() - time.monotonic()
        times = []
        for line in self.sentinels[0].log.read_text(errors="replace").splitlines():
            switch = _SWITCH.search(line)
            # Conflicting failovers (redis/redis#1446) can each promote the one replica: the
            # later logs a switch from that replica to itself, which moves nothing.
            if switch is None or switch.group(1) == switch.group(2):
                continue
            match = _LOG_STAMP.search(line)
            if match is None:
                raise AssertionError(f"a Sentinel log line without a time stamp: {line!r}")
            stamp = datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S.%f")
            times.append(stamp.timestamp() - offset)  # naive: local time, as Redis logs
        return times

    def _named_by(self, sentinel: SentinelProcess) -> int | None:
        try:
            with _client(sentinel.port) as c:
                addr = c.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        except (redis.RedisError, OSError):
            return None
        return int(addr[1]) if addr else None

    def _replica_ready(self, replica: RedisProcess) -> bool:
        with contextlib.suppress(redis.RedisError, OSError):
            with _client(replica.port) as c:
                info = c.info("replication")
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                return False
            for sentinel in self.sentinels:
                with _client(sentinel.port) as c:
                    seen = c.execute_command("SENTINEL", "replicas", MASTER)
                flags = {
                    int(r["port"]): r["flags"] for r in (_pairs(x) for x in seen) if "port" in r
                }
                if flags.get(replica.port) != "slave":
                    return False
            return True
        return False

    def stop(self) -> None:
        for process in [*self.sentinels, *self.nodes]:
            process.stop()


_SWITCH = re.compile(r"\+switch-master \S+ \S+ (\d+) \S+ (\d+)")
_LOG_STAMP = re.compile(r"(\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3})")


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


@contextlib.contextmanager
def topology(*, down_after_ms: int = STEADY_DOWN_AFTER_MS) -> Iterator[Topology]:
    """One primary, one replica in sync, three Sentinels (quorum 2); all stopped after.

    `down_after_ms` is the Sentinels' `down-after-milliseconds`: `FAILOVER_DOWN_AFTER_MS`
    for a test that measures failover speed, which must then re-read the primary from the
    Sentinels (`wait_stable`) rather than assume it, as an extra switch can happen.
    """
    nodes: list[RedisProcess] = []
    sentinels: list[SentinelProcess] = []
    try:
        nodes.append(start_redis())
        nodes.append(start_redis(replica_of=nodes[0].port))
        sentinels.extend(
            start_sentinel(MASTER, nodes[0].port, quorum=QUORUM, down_after_ms=down_after_ms)
            for _ in range(SENTINELS)
        )
        top = Topology(nodes, sentinels)
        top.wait_in_sync(nodes[1], within=20)
        yield top
    finally:
        Topology(nodes, sentinels).stop()
