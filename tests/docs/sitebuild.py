"""Building the docs site for the site, browser and engine tests, and serving it over HTTP.

The strict MkDocs build is the same for all three, so a run builds it once (`shared_site`)
and every xdist worker reads that one site: the builds were about a minute of CPU each time.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from filelock import FileLock

from tests.procs import ROOT, tool_env

__all__ = ["BuiltSite", "build_site", "check_links", "serve_site", "shared_site"]

#: Longest `mkdocs build` may take, in seconds.
BUILD_TIMEOUT_SECONDS = 300
#: Longest a worker waits for another worker's build of the shared site, in seconds.
SHARED_WAIT_SECONDS = BUILD_TIMEOUT_SECONDS + 60


def build_site(dest: Path) -> subprocess.CompletedProcess[str]:
    """Run `mkdocs build --strict` into `dest`; return the finished process (check its code)."""
    env = tool_env(DISABLE_MKDOCS_2_WARNING="true", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(dest)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )


class BuiltSite:
    """The run's one strict build: where it is, and how `mkdocs build --strict` ended."""

    def __init__(self, path: Path, returncode: int, stderr: str) -> None:
        self.path = path
        self.returncode = returncode
        self.stderr = stderr

    def check(self) -> Path:
        """The site's folder; fails the calling test with the build's log when it failed."""
        if self.returncode != 0:
            pytest.fail(f"mkdocs build --strict failed:\n{self.stderr[-4000:]}")
        return self.path


def shared_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The site built once per run, by the first worker that asks; the others wait for it.

    Under xdist every worker's base temporary folder is inside the run's own one, so the
    build and its lock live there (pytest-xdist's recipe for a session fixture run once).
    The folder is only read by the tests: none may write into it.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    dest, result = base / "shared-site", base / "shared-site.json"
    with FileLock(str(base / "shared-site.lock"), timeout=SHARED_WAIT_SECONDS):
        if not result.is_file():
            done = build_site(dest)
            summary = {"returncode": done.returncode, "stderr": done.stderr}
            result.write_text(json.dumps(summary), encoding="utf-8")
        summary = json.loads(result.read_text(encoding="utf-8"))
    return BuiltSite(dest, int(summary["returncode"]), str(summary["stderr"]))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_site(site: Path) -> Iterator[str]:
    """Serve `site` on a free loopback port; yield its base URL (`http://127.0.0.1:P/`)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def check_links(site: Path) -> subprocess.CompletedProcess[str]:
    """Run linkchecker over `site`, served over HTTP as readers get it; return the run.

    Over HTTP because linkchecker, run as root, drops to a user that cannot read pytest's
    private temporary folders through file:// URLs.
    """
    checker = Path(sys.executable).parent / "linkchecker"
    with serve_site(site) as base:
        return subprocess.run(
            [str(checker), "--no-status", "--no-warnings", "-t", "2", base],
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
