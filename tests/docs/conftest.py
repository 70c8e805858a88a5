"""Fixtures of the docs tests: one reference server per session, and the block harness.

The harness points every page's default address (127.0.0.1:8000) at this server, and
starts what a page itself starts in the background (a second instance, a redis-server).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from docs_automation.examples.harness import Harness
from tests.procs import ServerProcess, start_server


@pytest.fixture(scope="session")
def docs_server() -> Iterator[ServerProcess]:
    """A reference server with default settings, like `python -m reference_server`."""
    proc = start_server()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def harness(docs_server: ServerProcess) -> Iterator[Harness]:
    """The block harness, aimed at `docs_server`; stops what pages started at the end."""
    h = Harness(docs_server.port)
    yield h
    h.close()
