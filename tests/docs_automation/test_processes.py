"""Child processes started in their own group, waited for within a bound, and stopped."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from docs_automation import processes
from docs_automation.errors import ProcessError

pytestmark = pytest.mark.integration  # real child processes and sockets

# A child that listens on the port given as argv[1] (after an optional delay in argv[2]).
LISTENER = """
import socket, sys, time
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_free_port_is_bindable() -> None:
    port = processes.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_process_is_ready_once_its_port_listens(tmp_path: Path) -> None:
    port = processes.free_port()
    log = tmp_path / "child.log"
    proc = processes.spawn(
        [sys.executable, "-c", LISTENER, str(port), "0.2"], log=log, timeout=20, port=port
    )
    try:
        assert os.getpgid(proc.pid) == proc.pid  # its own process group
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    finally:
        status = processes.stop(proc)
    assert status == -signal.SIGTERM


def test_a_process_that_exits_early_raises_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    code = "print('no config here'); raise SystemExit(3)"
    with pytest.raises(ProcessError, match=r"(?s)child exited 3:.*no config here"):
        processes.spawn(
            [sys.executable, "-c", code],
            log=log,
            timeout=20,
            port=processes.free_port(),
            what="child",
        )


def test_a_process_not_ready_in_time_raises_and_is_stopped(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ProcessError, match="not ready on port"):
        processes.spawn(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            timeout=0.5,
            port=processes.free_port(),
            what="sleeper",
        )
    assert time.monotonic() - started < 20


def test_stop_kills_a_group_that_ignores_sigterm() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = processes.start([sys.executable, "-c", code])
    time.sleep(0.5)  # let it install the handler
    assert processes.stop(proc, grace=0.5) == -signal.SIGKILL


def test_stop_reaches_what_the_process_left_in_the_background(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    proc = processes.start(["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
    deadline = time.monotonic() + 10
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    processes.stop(proc)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_ready_needs_http_200_on_the_url() -> None:
    port = processes.free_port()
    code = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.path == '/ok' else 404); self.end_headers()\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    proc = processes.spawn(
        [sys.executable, "-c", code, str(port)], timeout=20, url=f"http://127.0.0.1:{port}/ok"
    )
    processes.stop(proc)
    with pytest.raises(ProcessError, match="not ready"):
        processes.spawn(
            [sys.executable, "-c", code, str(port)],
            timeout=1,
            url=f"http://127.0.0.1:{port}/missing",
        )
