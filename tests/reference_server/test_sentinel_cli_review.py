"""Review of the Sentinel options on the command line: "command-line options win"."""

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
