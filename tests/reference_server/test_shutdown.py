"""SIGTERM: every client gets disconnect_notice and close 1001, within a bounded time."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.wsclient import Client

pytestmark = [pytest.mark.integration]


def test_sigterm_sends_notice_and_1001_to_every_client(server_factory: Any) -> None:
    srv = server_factory({"WS_SHUTDOWN_GRACE_SECONDS": "3"})
    clients = [Client(srv.ws) for _ in range(5)]
    for c in clients:
        assert c.recv()["type"] == "connection_established"
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    for c in clients:
        notice = c.recv_until("disconnect_notice", timeout=10)
        assert notice["reason"] == "server_shutdown"
        assert c.close_code() == 1001
    # uvicorn re-raises the signal once shut down, so the exit status says SIGTERM.
    assert srv.proc.wait(15) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 3 + 5
