"""Real processes for tests and benchmarks: the reference server, `redis-server` (alone, as a
replica, or as a Sentinel), Prometheus.

Each starts on a free loopback port, waits until it answers, and is stopped (and reaped)
by `stop()`. Nothing here fakes a part: a server that fails to start raises with its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from docs_automation import processes
from docs_automation.processes import free_port

__all__ = [
    "ROOT",
    "WS_PATH",
    "PrometheusProcess",
    "RedisProcess",
    "SentinelProcess",
    "ServerProcess",
    "free_port",
    "start_prometheus",
    "start_redis",
    "start_sentinel",
    "start_server",
    "tool_env",
]

ROOT = Path(__file__).resolve().parent.parent
#: What coverage's `patch = ["subprocess"]` puts in the environment so child Pythons measure
#: themselves (coverage/patch.py; the older way is COVERAGE_PROCESS_START).
_COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def tool_env(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """`environ` (default `os.environ`) plus `extra`, without coverage's child variables.

    For third-party tools the tests run as Python children (mkdocs, properdocs,
    linkchecker, codespell): they run no line of `reference_server` or `docs_automation`,
    and measuring them anyway doubled their CPU time (a strict docs build went from 1.9 s to
    3.4 s of user time). Our own servers and CLIs keep the full environment.
    """
    env = dict(os.environ if environ is None else environ, **extra)
    for name in _COVERAGE_VARIABLES:
        env.pop(name, None)
    return env


WS_PATH = "/api/dashboard/ws/dashboard"
#: Seconds redis-server gets to exit after SIGTERM before SIGKILL (it saves nothing).
_REDIS_GRACE_SECONDS = 5.0


@dataclass
class ServerProcess:
    """A reference server running as its own process (`python -m reference_server`)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig`, wait for exit (kill after `timeout` seconds), return the exit status."""
        if self.proc.poll() is None:
            processes.stop(self.proc, grace=timeout, first=sig)
        return self.proc.returncode


def start_server(
    env: dict[str, str] | None = None, *, port: int | None = None, timeout: float = 20.0
) -> ServerProcess:
    """Start a reference server with `env` (WS_* settings) on a free port; wait for /health."""
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="hive-server-", suffix=".log")[1])
    proc = processes.start_reference_server(port, cwd=ROOT, settings=env, log=log, timeout=timeout)
    return ServerProcess(port, proc, log, env or {})


@dataclass
class _PrivateProcess:
    """A process of the tests' own on a free loopback port, with a temporary folder."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    workdir: Path
    #: Seconds it gets to exit after SIGTERM before SIGKILL.
    grace: ClassVar[float] = processes.GRACE_SECONDS

    def stop(self) -> None:
        """SIGTERM (SIGKILL after `grace`), then remove its folder."""
        if self.proc.poll() is None:
            processes.stop(self.proc, grace=self.grace)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class RedisProcess(_PrivateProcess):
    """A private `redis-server` on a free port, never the machine's shared one."""

    grace: ClassVar[float] = _REDIS_GRACE_SECONDS

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """`kill -9`: the process dies at once, keeping nothing (no persistence)."""
        if self.proc.poll() is None:
            processes.stop(self.proc, first=signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: Redis shuts down cleanly (SIGKILL if it has not within the grace)."""
        if self.proc.poll() is None:
            processes.stop(self.proc, grace=_REDIS_GRACE_SECONDS)

    def pause(self) -> None:
        """SIGSTOP: Redis hangs, its sockets stay open."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self.proc.send_signal(signal.SIGCONT)

    def restart(self, timeout: float = 10.0, *, replica_of: int | None = None) -> None:
        """Start a fresh server on the same port (after `kill` or `stop`), empty.

        Args:
            timeout: longest wait for it to answer PING, in seconds.
            replica_of: the port of the primary it starts as a replica of; None: a primary.
        """
        self.kill()
        fresh = start_redis(port=self.port, timeout=timeout, replica_of=replica_of)
        # The fresh server works in a temporary folder of its own: drop the old one now and
        # keep the new one's, so `stop` removes it (and nothing lands in the project).
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.proc, self.log, self.workdir = fresh.proc, fresh.log, fresh.workdir

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        super().stop()


def redis_server_binary() -> str:
    """Path of `redis-server`; raises when it is missing (scripts/bootstrap installs it)."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed; run scripts/bootstrap")
    return path


def _pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        # A server with `requirepass` answers NOAUTH: it is up all the same.
        return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))


def start_redis(
    *,
    port: int | None = None,
    timeout: float = 10.0,
    replica_of: int | None = None,
    password: str | None = None,
) -> RedisProcess:
    """Start `redis-server` on a free loopback port with no persistence; wait for PING.

    With `replica_of` (a port on 127.0.0.1) it starts as that primary's replica. With
    `password` it requires it (`requirepass`), and uses it with its primary (`masterauth`).
    Its working directory is a temporary folder (a replica writes its copy there).
    """
    port = port or free_port()
    replica = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
    if password:
        replica += ["--requirepass", password, "--masterauth", password]
    workdir = Path(tempfile.mkdtemp(prefix="hive-redis-"))
    log = workdir / "redis.log"
    proc = processes.spawn(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "no",
            # Redis waits 5 s by default before a diskless full sync, for more replicas to
            # join it; a test's replica would spend them refused (WAIT) for nothing.
            "--repl-diskless-sync-delay",
            "0",
            *replica,
        ],
        log=log,
        timeout=timeout,
        probe=lambda: _pong(port),
        what="redis-server",
    )
    return RedisProcess(port, proc, log, workdir)


@dataclass
class SentinelProcess(_PrivateProcess):
    """A private Redis Sentinel (`redis-server CONF --sentinel`) on a free loopback port."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_sentinel(
    master: str,
    primary_port: int,
    *,
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
    timeout: float = 10.0,
    auth_pass: str | None = None,
    password: str | None = None,
) -> SentinelProcess:
    """Start a Sentinel monitoring `master` (the primary on `primary_port`); wait for PING.

    The timings are short for tests (Redis's defaults are 30 s and 3 minutes): the primary
    counts as down after `down_after_ms` without an answer, and a failover that stalls is
    retried after `failover_timeout_ms`. Its config file, which Sentinel rewrites as it
    learns the replicas and the other Sentinels, lives in a temporary folder. `auth_pass`
    is the nodes' password (`sentinel auth-pass`), `password` the Sentinel's own
    (`requirepass`).
    """
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hive-sentinel-"))
    log = workdir / "sentinel.log"
    conf = workdir / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {workdir}\n"
        f"sentinel monitor {master} 127.0.0.1 {primary_port} {quorum}\n"
        f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
        f"sentinel failover-timeout {master} {failover_timeout_ms}\n"
        f"sentinel parallel-syncs {master} 1\n"
        + (f"sentinel auth-pass {master} {auth_pass}\n" if auth_pass else "")
        + (f"requirepass {password}\n" if password else "")
    )
    proc = processes.spawn(
        [redis_server_binary(), str(conf), "--sentinel"],
        log=log,
        timeout=timeout,
        probe=lambda: _pong(port),
        what="redis-sentinel",
    )
    return SentinelProcess(port, proc, log, workdir)


@dataclass
class PrometheusProcess(_PrivateProcess):
    """A private Prometheus on a free loopback port, its storage in a temporary folder."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_prometheus(config: Path, *, timeout: float = 30.0) -> PrometheusProcess:
    """Start Prometheus with `config` on a free loopback port; wait for `/-/ready`.

    Raises:
        RuntimeError: `prometheus` is not installed (`HIVE_NEED_PROMETHEUS=1 scripts/bootstrap`).
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "prometheus is not installed; run HIVE_NEED_PROMETHEUS=1 scripts/bootstrap"
        )
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hive-prometheus-"))
    log = workdir / "prometheus.log"
    proc = processes.spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=log,
        timeout=timeout,
        url=f"http://127.0.0.1:{port}/-/ready",
        what="prometheus",
    )
    return PrometheusProcess(port, proc, log, workdir)
