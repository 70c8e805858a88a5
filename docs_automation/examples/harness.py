"""The block harness: each docs block run or validated against a live reference server.

`Harness.check(fence)` proves one block: programs (`py`, `bash`, `console`, `js`, `ts`) run
for real, data blocks are validated (see `validators`). The address a reader copies,
`127.0.0.1:8000`, is rewritten to the port of the server under test, so the default URL in a
page is the URL that was tested. A page whose `bash` block ends a command with `&` starts
that process (a second instance, a redis-server) before its other blocks run; ports named in
such a command are moved to free ones. The block marked `<!-- example: newcomer -->` runs its
whole page in order in a fresh copy of the project and a fresh virtual environment, timed
(see `pages`). A block marked `<!-- example: prerequisites -->` (a page's venv and the server
it needs) is not run here: the server under test stands in for it, and the page run
(`tests/docs/test_pages.py`) runs it as written.

`python -m docs_automation examples [--list]` (the `cli` module) does all of this outside
pytest and prints the same tally as the docs tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec
import yaml

from .. import processes
from ..errors import BlockError, ProcessError
from . import validators
from .fences import ILLUSTRATIVE, Fence, classify, scan
from .pages import reader_env, run_newcomer
from .runners import (
    DEFAULT_PORT,
    background_ports,
    console_pairs,
    rewrite,
    run_console,
    run_script,
    run_shell,
)

__all__ = [
    "BLOCK_TIMEOUT_SECONDS",
    "DEFAULT_PORT",
    "NEWCOMER_TIMEOUT_SECONDS",
    "READY_TIMEOUT_SECONDS",
    "ROOT",
    "Harness",
    "docs_fences",
    "rewrite",
]

ROOT = Path(__file__).resolve().parents[2]
"""The project folder: `docs/` and `mkdocs.yml` are read from here."""
BLOCK_TIMEOUT_SECONDS = 60.0
"""Longest one block may run, in seconds."""
READY_TIMEOUT_SECONDS = 20.0
"""Longest a process a page starts in the background may take to listen, in seconds."""
NEWCOMER_TIMEOUT_SECONDS = 900.0
"""Longest the newcomer run (fresh venv, `pip install`, the whole tutorial) may take."""
HTTP_TIMEOUT_SECONDS = 10.0
"""Longest one HTTP request of a block's check (a metrics scrape) may take, in seconds."""
_METRICS_PATH = "/api/dashboard/metrics/websockets"


class _Loader(yaml.SafeLoader):
    """Reads mkdocs.yml, whose `!!python/name:` tags name Python objects we do not need."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def docs_fences(root: Path = ROOT) -> list[Fence]:
    """Every fence of every page under `docs/`, less what mkdocs.yml's `exclude_docs` drops.

    Args:
        root: the project folder, holding `docs/` and `mkdocs.yml`.

    Returns:
        The fences, page by page in path order and in page order within a page.

    Raises:
        OSError: `mkdocs.yml` or a page cannot be read.
    """
    config = yaml.load((root / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    excluded = pathspec.GitIgnoreSpec.from_lines(str(config.get("exclude_docs") or "").splitlines())
    docs = root / "docs"
    fences: list[Fence] = []
    for path in sorted(docs.rglob("*.md")):
        page = path.relative_to(docs).as_posix()
        if not excluded.match_file(page):
            fences += scan(page, path.read_text(encoding="utf-8"))
    return fences


@dataclass
class _Scope:
    """What the blocks of one page run against: a port map, an environment, processes."""

    ports: dict[int, int]
    env: dict[str, str]
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            processes.stop(proc)
        self.procs.clear()


class Harness:
    """Proves docs blocks against a reference server listening on `default_port`.

    Args:
        default_port: port of a running reference server with default settings.
        root: the repository root.
        python: interpreter whose `bin/` goes first on PATH for shell blocks.
    """

    def __init__(self, default_port: int, root: Path = ROOT, python: str = sys.executable):
        self.root = root
        self.default_port = default_port
        self.bin_dir = str(Path(python).parent)
        self.tmp = Path(tempfile.mkdtemp(prefix="hive-examples-"))
        self._scopes: dict[str, _Scope] = {}
        self._pages: dict[str, list[Fence]] = {}
        self._browser: Any = None
        self.newcomer_seconds: float | None = None
        self.newcomer_steps: list[tuple[str, float]] = []

    def close(self) -> None:
        """Stop every process the pages started and remove scratch files."""
        for scope in self._scopes.values():
            scope.stop()
        if self._browser is not None:
            self._browser.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def page_fences(self, page: str) -> list[Fence]:
        """The fences of one page, read once."""
        if page not in self._pages:
            self._pages[page] = scan(page, (self.root / "docs" / page).read_text("utf-8"))
        return self._pages[page]

    def env(self, home: Path, bin_dir: str | None) -> dict[str, str]:
        """The environment blocks run in: no WS_* leaking in, a private HOME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WS_")}
        env.pop("REDIS_URL", None)
        if bin_dir:
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
        env.update({"HOME": str(home), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        return env

    def scope(self, page: str) -> _Scope:
        """The page's scope, starting its background blocks the first time it is asked for."""
        if page in self._scopes:
            return self._scopes[page]
        work = self.tmp / re.sub(r"\W", "_", page)
        work.mkdir(parents=True, exist_ok=True)
        scope = self._new_scope(self.page_fences(page), work, self.bin_dir, self.default_port)
        self._scopes[page] = scope
        return scope

    def _new_scope(
        self, fences: list[Fence], work: Path, bin_dir: str | None, default: int | None
    ) -> _Scope:
        background = [
            f for f in fences if classify(f) in ("bash", "console") and background_ports(f.body)
        ]
        claimed = {p for f in background for p in background_ports(f.body)}
        ports = {p: processes.free_port() for p in claimed}
        if default is not None:
            ports.setdefault(DEFAULT_PORT, default)
        env = self.env(work, bin_dir)
        if DEFAULT_PORT in claimed:
            env["WS_PORT"] = str(ports[DEFAULT_PORT])
        scope = _Scope(ports, env, work)
        try:
            for fence in background:
                self._start_background(fence, scope)
        except BaseException:
            scope.stop()
            raise
        return scope

    def _start_background(self, fence: Fence, scope: _Scope) -> None:
        script = scope.workdir / f"bg_{fence.line}.sh"
        body = rewrite(fence.source(self.root), scope.ports)
        if fence.lang == "console":
            body = "\n".join(c for c, _ in console_pairs(body))
        script.write_text("set -euo pipefail\n" + body + "\nwait\n")
        log = scope.workdir / f"bg_{fence.line}.log"
        proc = processes.start(["bash", str(script)], cwd=self.root, env=scope.env, log=log)
        scope.procs.append(proc)
        for port in background_ports(fence.body):
            try:
                processes.wait_ready(
                    proc,
                    timeout=READY_TIMEOUT_SECONDS,
                    port=scope.ports[port],
                    log=log,
                    what=fence.id,
                )
            except ProcessError as exc:
                raise BlockError(str(exc)) from exc

    # -- one block -----------------------------------------------------------------------

    def check(self, fence: Fence) -> str:
        """Prove one block; return a one-line summary of what was checked.

        Raises:
            BlockError: the block failed, with the reason.
        """
        kind = classify(fence)
        if kind is None:
            raise BlockError(
                f"{fence.id}: `{fence.lang or 'no language'}` is neither run nor validated; "
                "use a supported language or mark it <!-- illustrative: reason -->"
            )
        if kind == ILLUSTRATIVE:
            return f"illustrative: {fence.directive[1] if fence.directive else ''}"
        if kind == "newcomer":
            return self.newcomer(fence.page)
        if kind == "prerequisites":
            # The server under test stands in for it: run here, it would make a venv and
            # `pip install -e .` in the developer's checkout. The page run runs it as written.
            return "prerequisites: run as written by the page run (tests/docs/test_pages.py)"
        if kind == "mermaid":
            return self._mermaid(fence.body)
        if kind == "markdown":
            return f"{validators.check_markdown(fence.body, fence.page)} inner fences classify"
        if kind == "frame":
            return "frame " + validators.check_frame(fence.source(self.root))
        if kind == "settings":
            validators.check_settings(fence.source(self.root))
            return "settings accepted"
        scope = self.scope(fence.page)
        source = rewrite(fence.source(self.root), scope.ports)
        if kind == "prometheus":
            return self._prometheus(source, scope)
        if kind == "bash":
            if background_ports(fence.body):
                alive = [p.poll() is None for p in scope.procs]
                if not all(alive):
                    raise BlockError(f"{fence.id}: a background process died")
                return "background processes listening"
            return run_shell(source, self.root, scope.env, BLOCK_TIMEOUT_SECONDS)
        if kind == "console":
            return run_console(source, self.root, scope.env, BLOCK_TIMEOUT_SECONDS)
        if kind in ("js", "ts"):
            return run_script(kind, source, self.root, BLOCK_TIMEOUT_SECONDS)
        return self._python(fence, source, scope)

    def _python(self, fence: Fence, source: str, scope: _Scope) -> str:
        # Outside pytest, a child process runs pytest-examples' own print check, so a hung
        # example can be stopped and the check is the one the docs tests apply.
        target = scope.workdir / f"example_{fence.line}.py"
        target.write_text(source)
        code = (
            "import sys; from docs_automation.examples.runners import print_check; "
            "print_check(sys.argv[1])"
        )
        run_shell(
            f"{sys.executable} -c '{code}' {target}", self.root, scope.env, BLOCK_TIMEOUT_SECONDS
        )
        return "python: ran, and printed what its #> lines show"

    def _prometheus(self, source: str, scope: _Scope) -> str:
        if "scrape_configs:" in source:
            urls = validators.scrape_targets(source)
            for url in urls:
                validators.metric_names(_get(url))
            return f"scraped {len(urls)} target(s)"
        port = scope.ports.get(DEFAULT_PORT, self.default_port)
        exported = validators.metric_names(_get(f"http://127.0.0.1:{port}{_METRICS_PATH}"))
        return f"{validators.check_prometheus(source, exported)} rules name exported metrics"

    def _mermaid(self, text: str) -> str:
        if self._browser is None:
            from .browser import MermaidChecker

            self._browser = MermaidChecker(self.root)
        kind: str = self._browser.parse(text)
        return f"mermaid {kind} parses"

    # -- the newcomer run ----------------------------------------------------------------

    def newcomer(self, page: str) -> str:
        """Run `page`'s blocks in order in a fresh copy of the project; return the timing.

        The copy has no `.venv` and no `node_modules`; the page's own blocks create the
        virtual environment and start the server, as a newcomer would.
        """
        work = self.tmp / "newcomer"
        # No project venv on PATH: the page must make its own.
        env = reader_env(os.environ, work / "home", hide=[self.bin_dir])
        run = run_newcomer(self.page_fences(page), self.root, work, env, NEWCOMER_TIMEOUT_SECONDS)
        self.newcomer_seconds, self.newcomer_steps = run.seconds, run.steps
        return f"newcomer run of {page}: {run.seconds:.1f} s"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
        return str(response.read().decode("utf-8"))
