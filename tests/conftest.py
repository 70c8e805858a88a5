"""Shared fixtures: real server and redis-server processes, and the `../shared` folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import schedule
from tests.docs.sitebuild import BuiltSite, shared_site
from tests.procs import ROOT, RedisProcess, ServerProcess, start_redis, start_server

SHARED = ROOT.parent / "shared"
_STARTED = time.time()  # this run began (the newcomer report must be newer)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the project. It exists in CI; elsewhere tests using it skip."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing, and CI must have it")
        pytest.skip(f"{SHARED} exists only in the project's CI and dev machines, not here")
    return SHARED


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One reference server (default settings, in-process broker) for a test module."""
    proc = start_server()
    yield proc
    proc.stop()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers with custom WS_* settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None) -> ServerProcess:
        proc = start_server(env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A private redis-server on a free port, killed after the test."""
    proc = start_redis()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The docs site's strict MkDocs build, made once per run for all workers (read only)."""
    return shared_site(tmp_path_factory)


KINDS = ("unit", "integration", "docs", "browser", "bench", "chaos", "hostile")


def pytest_configure(config: pytest.Config) -> None:
    """Record each test's seconds when `HIVE_RECORD_DURATIONS` names a file (tests/schedule.py)."""
    schedule.configure(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test says what kind it is, so `-m unit` and friends select the whole suite.

    Then the longest work goes first (tests/schedule.py), so no long test starts last.
    """
    for item in items:
        if item.path.parent.name == "docs":
            item.add_marker(pytest.mark.docs)
    unmarked = [i.nodeid for i in items if not {m.name for m in i.iter_markers()} & set(KINDS)]
    if unmarked:
        raise pytest.UsageError(
            f"tests without a kind marker ({', '.join(KINDS)}): " + ", ".join(unmarked[:10])
        )
    items[:] = schedule.longest_first(items, schedule.load())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the docs tally (and the newcomer run's time) at the end of every run."""
    from tests.docs.summary import print_docs_summary

    print_docs_summary(terminalreporter, _STARTED)
