"""The Redis options on the command line: "command-line options win" over the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.procs import ROOT, free_port

pytestmark = pytest.mark.integration


def _starts(args: list[str], env: dict[str, str]) -> tuple[bool, str]:
    """Whether the server answers /health (any status) within 20 s; and its stderr."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, "WS_LOG_LEVEL": "error", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return True, ""
            except httpx.HTTPError:
                time.sleep(0.2)
        return False, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()


def test_redis_sentinels_on_the_command_line_win_over_redis_url_in_the_environment() -> None:
    dead = f"127.0.0.1:{free_port()}"  # no Sentinel answers: the server starts degraded
    started, stderr = _starts(
        ["--redis-sentinels", dead, "--redis-sentinel-master", "hive"],
        {"REDIS_URL": "redis://127.0.0.1:1"},
    )
    assert started, stderr


def test_redis_url_on_the_command_line_wins_over_sentinels_in_the_environment() -> None:
    started, stderr = _starts(
        ["--redis-url", f"redis://127.0.0.1:{free_port()}"],  # nobody there: starts degraded
        {"WS_REDIS_SENTINELS": f"127.0.0.1:{free_port()}", "WS_REDIS_SENTINEL_MASTER": "hive"},
    )
    assert started, stderr


def test_redis_url_and_sentinels_both_on_the_command_line_exit_2_naming_both() -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--redis-url",
            f"redis://{dead}",
            "--redis-sentinels",
            dead,
            "--redis-sentinel-master",
            "hive",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("WS_", "REDIS_"))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "REDIS_URL" in proc.stderr and "WS_REDIS_SENTINELS" in proc.stderr
