"""Child processes started, waited for and stopped: the one process helper of the project.

`start` runs a command in its own process group (its own session), so `stop` can signal
everything it spawned, even after the leader has exited. `wait_ready` polls, within a time
bound, until the process listens on a port, answers HTTP 200 on a URL, or passes a probe.
`stop` sends SIGTERM to the group, waits a grace period, then sends SIGKILL. `free_port`
finds a loopback port for a server to listen on. The docs harness, the test fixtures
(`tests/procs.py`) and the benchmarks (`bench/targets.py`) all start their servers here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import ProcessError

__all__ = [
    "GRACE_SECONDS",
    "HOST",
    "LOG_TAIL_CHARS",
    "POLL_SECONDS",
    "free_port",
    "log_tail",
    "spawn",
    "start",
    "start_reference_server",
    "stop",
    "wait_ready",
]

HOST = "127.0.0.1"
"""The loopback address every helper here listens on or probes."""
POLL_SECONDS = 0.05
"""Pause between two readiness probes (and two checks that a group is gone), in seconds."""
PROBE_TIMEOUT_SECONDS = 1.0
"""Longest one readiness probe (a TCP connect or an HTTP request) may take, in seconds."""
GRACE_SECONDS = 10.0
"""Default time a process group has to exit after SIGTERM before SIGKILL, in seconds."""
LOG_TAIL_CHARS = 4000
"""How much of a failed process's log (or a failed docs block's output) an error message
quotes, in characters: the last lines, enough to show the failing step's own output."""

Probe = Callable[[], bool]
"""A readiness check: true when ready; `OSError` counts as not ready yet."""


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now.

    The port is only free at the moment of the call; start the server on it at once.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(log: Path | None, chars: int = LOG_TAIL_CHARS) -> str:
    """The last `chars` characters of `log` (stripped), or `(no output)`."""
    if log is None or not log.is_file():
        return "(no output)"
    return log.read_text(errors="replace")[-chars:].strip() or "(no output)"


def start(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group; return at once, without waiting for it.

    Args:
        argv: the command and its arguments.
        cwd: the working directory (default: this process's).
        env: the whole environment (default: this process's).
        log: a file that receives standard output and standard error (truncated first);
            without it both are discarded.

    Returns:
        The running process; its pid is also its process group's id. Pass it to `stop`.
    """
    if log is None:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with log.open("wb") as out:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _listening(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT_SECONDS):
        return True


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
        return bool(response.status == 200)


def wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    timeout: float,
    port: int | None = None,
    url: str | None = None,
    probe: Probe | None = None,
    log: Path | None = None,
    what: str = "process",
) -> None:
    """Wait until `proc` is ready: every given check passes (port, then URL, then probe).

    Args:
        proc: the process, from `start`.
        timeout: longest wait, in seconds.
        port: ready only once something listens on this port of 127.0.0.1.
        url: ready only once a GET of this URL answers HTTP 200.
        probe: ready only once this returns true.
        log: the process's log, quoted in the error.
        what: how the error names the process.

    Raises:
        ProcessError: `proc` exited first, or was not ready after `timeout` seconds (it is
            left running: stop it). The message ends with the tail of `log`.
    """
    checks: list[Probe] = []
    if port is not None:
        checks.append(lambda: _listening(port))
    if url is not None:
        checks.append(lambda: _http_ok(url))
    if probe is not None:
        checks.append(probe)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessError(f"{what} exited {proc.returncode}:\n{log_tail(log)}")
        try:
            if all(check() for check in checks):
                return
        except OSError:
            pass  # refused, reset or timed out: not ready yet
        time.sleep(POLL_SECONDS)
    where = f" on port {port}" if port is not None else ""
    raise ProcessError(f"{what} was not ready{where} after {timeout} s:\n{log_tail(log)}")


def stop(
    proc: subprocess.Popen[bytes],
    *,
    grace: float = GRACE_SECONDS,
    first: int = signal.SIGTERM,
) -> int | None:
    """Stop `proc`'s whole process group: `first`, then SIGKILL once `grace` has passed.

    The group is signalled even when `proc` itself has already exited, because what it
    started in the background outlives it. Stopping a stopped group does nothing.

    Args:
        proc: a process from `start` (the leader of its own group).
        grace: seconds the group has to exit after `first` before SIGKILL.
        first: the first signal (SIGINT to test a graceful shutdown, SIGKILL to crash it).

    Returns:
        The leader's exit status (negative: the signal that ended it), or None when it
        could not be reaped.
    """
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _group_gone(proc, grace):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable: report None
        proc.wait(grace)
    return proc.returncode


def _group_gone(proc: subprocess.Popen[bytes], grace: float) -> bool:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie still counts as a member of its group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(POLL_SECONDS)
    return False


def spawn(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    port: int | None = None,
    url: str | None = None,
    probe: Probe | None = None,
    what: str = "process",
) -> subprocess.Popen[bytes]:
    """`start` then `wait_ready`; a process that is not ready is stopped before raising.

    Args:
        argv: the command and its arguments.
        timeout: longest wait for readiness, in seconds.
        cwd: the working directory (default: this process's).
        env: the whole environment (default: this process's).
        log: a file for standard output and standard error; without it both are discarded.
        port: ready only once something listens on this port of 127.0.0.1.
        url: ready only once a GET of this URL answers HTTP 200.
        probe: ready only once this returns true.
        what: how the error names the process.

    Returns:
        The ready process; stop it with `stop`.

    Raises:
        ProcessError: the process exited or was not ready within `timeout` seconds.
    """
    proc = start(argv, cwd=cwd, env=env, log=log)
    try:
        wait_ready(proc, timeout=timeout, port=port, url=url, probe=probe, log=log, what=what)
    except BaseException:
        stop(proc)
        raise
    return proc


def start_reference_server(
    port: int,
    *,
    cwd: Path,
    settings: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float,
) -> subprocess.Popen[bytes]:
    """Start `python -m reference_server` on `port` of 127.0.0.1 and wait for `/health`.

    The server gets this process's environment without any `WS_*` setting or `REDIS_URL`
    (so a developer's shell cannot change what a test or a docs check sees), then
    `settings` on top.

    Args:
        port: the loopback port it listens on.
        cwd: the folder it runs in (the project root).
        settings: `WS_*` (and `REDIS_URL`) environment settings; default: none.
        log: a file for its standard output and error; without it both are discarded.
        timeout: longest wait for `/health` to answer 200, in seconds.

    Returns:
        The ready server process; stop it with `stop`.

    Raises:
        ProcessError: the server exited or did not answer within `timeout` seconds.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS_") and k != "REDIS_URL"}
    env.update({"WS_PORT": str(port), "WS_HOST": HOST, **(settings or {})})
    return spawn(
        [sys.executable, "-m", "reference_server"],
        cwd=cwd,
        env=env,
        log=log,
        timeout=timeout,
        url=f"http://{HOST}:{port}/health",
        what="the reference server",
    )
