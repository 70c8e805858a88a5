"""Building the docs site for the site and browser tests, and serving it over HTTP."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.procs import ROOT

__all__ = ["build_site", "check_links", "serve_site"]

#: Longest `mkdocs build` may take, in seconds.
BUILD_TIMEOUT_SECONDS = 300


def build_site(dest: Path) -> subprocess.CompletedProcess[str]:
    """Run `mkdocs build --strict` into `dest`; return the finished process (check its code)."""
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(dest)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )


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
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
