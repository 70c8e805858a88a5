"""The page run: a page's blocks in order, in one shell, in a copy of the project, timed.

A reader who lands on a page follows it top to bottom: every shell, console (its commands
only) and Python block, in order, in one shell, so `source .venv/bin/activate` and the
processes a block starts with `&` carry on to the next block. `page_script` writes that
shell script and `run_page` runs it in its own process group, with a time bound, then stops
the group (and with it every server the page started). A timed marker before each block
names the block that failed, as `page.md:line`, with the tail of the output.

Two runs use it. The newcomer run (the tutorial's `<!-- example: newcomer -->` block) copies
the project without its virtual environment, so the page's own blocks create it; its
ports are moved to free ones. The how-to runs (`tests/docs/test_pages.py`) rewrite
nothing: the page's `<!-- example: prerequisites -->` block finds the virtual environment
that `prepare_project` made once, and `8000` really is port 8000, so the ports a page names
must be free first (`busy_ports`).

Blocks written for a browser (`ts`, `js`) and data blocks (frames, settings, Prometheus
rules, diagrams) are not steps: the block harness type-checks and runs or validates them.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import processes
from ..errors import BlockError
from .fences import ILLUSTRATIVE, Fence, classify
from .runners import DEFAULT_PORT, background_ports, console_pairs, rewrite

__all__ = [
    "PageRun",
    "busy_ports",
    "copy_project",
    "page_ports",
    "page_script",
    "prepare_project",
    "reader_env",
    "refresh_project",
    "run_newcomer",
    "run_page",
]

_STEP = "@@hive-step"
# Blocks that are not steps. Data blocks are validated elsewhere; `ts` and `js` are written
# for a browser (the block harness type-checks them and runs them under Node).
_NOT_STEPS = frozenset(
    {ILLUSTRATIVE, "frame", "settings", "markdown", "mermaid", "prometheus", "js", "ts"}
)
_SHELL_STEPS = frozenset({"bash", "newcomer", "prerequisites"})
# An address or a port option, as a reader's command names a port (`127.0.0.1:8000`,
# `--port 8021`, `-p 6390`, `WS_PORT=8000`). Written here, not taken from the harness's
# rewriter, so that a port the rewriter misses is still checked (style principle 16).
_NAMED_PORT = re.compile(r"(?:127\.0\.0\.1:|localhost:|--port[ =]|-p |WS_PORT=)(\d{2,5})\b")
_VENV = ".venv"


@dataclass(frozen=True)
class PageRun:
    """How long a page run took.

    Attributes:
        page: the page's path under `docs/` (`how-to/secure.md`).
        seconds: the whole run's wall time, in seconds.
        steps: each block's `(id, seconds)`, in page order.
    """

    page: str
    seconds: float
    steps: list[tuple[str, float]]


def copy_project(root: Path, dest: Path) -> Path:
    """Copy the project's files (as git lists them, ignored ones left out) into `dest`.

    Tracked files and new files git does not ignore are copied, with their modes; `.venv`,
    `node_modules` and caches are not. Returns `dest`.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = root / rel
        if source.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return dest


def prepare_project(root: Path, dest: Path, env: Mapping[str, str], timeout: float) -> Path:
    """Copy the project to `dest` and install it, editable, into `dest/.venv`.

    What a page's prerequisites block does the first time, done once so that each page run
    finds it done. Keep `dest` at the same path afterwards: the editable install points
    there. Call `refresh_project` before each page.

    Args:
        root: the project to copy.
        dest: where the copy goes (created).
        env: the environment `python3 -m venv` and `pip` run in (see `reader_env`).
        timeout: longest the venv and the install may take together, in seconds.

    Returns:
        `dest`.

    Raises:
        BlockError: creating the venv or installing failed or took too long (with the
            output's tail).
    """
    copy_project(root, dest)
    script = f"set -euo pipefail\npython3 -m venv {_VENV}\n{_VENV}/bin/pip install -q -e .\n"
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=dest,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BlockError(f"installing the project took longer than {timeout} s") from None
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-processes.LOG_TAIL_CHARS :]
        raise BlockError(f"installing the project into {dest / _VENV} failed:\n{tail}")
    return dest


def refresh_project(root: Path, dest: Path) -> Path:
    """Make `dest` a fresh copy of `root` again, keeping its `.venv` (and install metadata).

    Whatever a previous page left in the copy is removed, and the project's files are
    copied anew, at the same paths, so the editable install stays valid. Returns `dest`.
    """
    for entry in dest.iterdir():
        if entry.name == _VENV or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return copy_project(root, dest)


def reader_env(environ: Mapping[str, str], home: Path, hide: Iterable[str] = ()) -> dict[str, str]:
    """The environment of a reader's fresh shell: no settings leaking in, a private HOME.

    Args:
        environ: the environment to start from (usually `os.environ`).
        home: the HOME (and TMPDIR parent) the page's commands get; created if missing.
        hide: folders taken off PATH (the project's own venv's `bin/`, so the page must
            make or activate its own).

    Returns:
        `environ` without `WS_*`, `REDIS_URL` and `VIRTUAL_ENV`, with `hide` off PATH,
        `HOME` and `TMPDIR` under `home`, a shared pip cache, and no colours.
    """
    env = {
        k: v
        for k, v in environ.items()
        if not k.startswith("WS_") and k not in ("REDIS_URL", "VIRTUAL_ENV")
    }
    hidden = set(hide)
    env["PATH"] = os.pathsep.join(
        d for d in env.get("PATH", "").split(os.pathsep) if d and d not in hidden
    )
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    return env


def page_ports(fences: Iterable[Fence], root: Path) -> set[int]:
    """Every port the page's steps name: in an address, after `--port` or `-p`.

    A reference server started in the background without a port listens on 8000, so that
    counts too. Blocks that are not steps (a browser's `ts`) do not count.
    """
    ports: set[int] = set()
    for fence in fences:
        if classify(fence) in _NOT_STEPS:
            continue
        text = fence.source(root)
        ports |= {int(port) for port in _NAMED_PORT.findall(text)}
        ports |= background_ports(text)
    return ports


def busy_ports(ports: Iterable[int]) -> list[int]:
    """The ports of 127.0.0.1 among `ports` that a server could not listen on right now.

    Each is bound the way servers bind (`SO_REUSEADDR`, so a closed connection lingering
    in TIME_WAIT does not count), then released.
    """
    busy = []
    for port in sorted(ports):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((processes.HOST, port))
            except OSError:
                busy.append(port)
    return busy


def page_script(fences: Iterable[Fence], root: Path, ports: Mapping[int, int] | None = None) -> str:
    """One bash script running the page's steps in order, with a timed marker before each.

    Args:
        fences: the page's blocks, in page order.
        root: the project folder (files a block includes with `--8<--` are read there).
        ports: ports to move (`{8000: 41234}`); None or empty runs the page as written.

    Returns:
        The script (`set -euo pipefail`, so the first failing command ends it). Shell blocks
        run as they are, a console block's commands run without its output, Python blocks
        run with the `python` on PATH (the page's venv, once activated).

    Raises:
        BlockError: a block is a kind the run cannot place.
    """
    lines = ["set -euo pipefail"]
    for fence in fences:
        kind = classify(fence)
        if kind in _NOT_STEPS:
            continue
        source = rewrite(fence.source(root), dict(ports or {}))
        # A leading newline: the previous step's output may not end with one (curl).
        lines.append(f'printf "\\n{_STEP} {fence.id} %s\\n" "$(date +%s.%N)"')
        if kind == "python":
            lines += ["python - <<'HIVE_EXAMPLE_EOF'", source.rstrip("\n"), "HIVE_EXAMPLE_EOF"]
        elif kind == "console":
            lines += [command for command, _ in console_pairs(source)]
        elif kind in _SHELL_STEPS:
            lines.append(source.rstrip("\n"))
        else:
            raise BlockError(f"{fence.id}: a `{fence.lang}` block cannot run in a page run")
    lines.append(f'printf "\\n{_STEP} end %s\\n" "$(date +%s.%N)"')
    return "\n".join(lines) + "\n"


def run_page(
    fences: list[Fence],
    *,
    root: Path,
    project: Path,
    work: Path,
    env: Mapping[str, str],
    timeout: float,
    ports: Mapping[int, int] | None = None,
) -> PageRun:
    """Run one page's steps in order in `project`, as a reader would; return the timings.

    The script runs in its own process group; when it ends (or fails, or times out) the
    whole group is stopped, so every process the page started in the background goes too.

    Args:
        fences: the page's blocks, in page order (all from one page).
        root: the project folder the blocks' included files are read from.
        project: the folder the page runs in (a copy from `copy_project` or
            `prepare_project`).
        work: a scratch folder for the script and its log (`page.sh`, `page.log`).
        env: the whole environment (see `reader_env`).
        timeout: longest the whole page may take, in seconds.
        ports: ports to move to others; None runs the page as written.

    Returns:
        The page's wall time and each step's.

    Raises:
        BlockError: a port the page names is already taken; a step failed (the message
            names it as `page.md:line` and ends with the output's tail); or the page ran
            longer than `timeout` seconds.
    """
    page = fences[0].page if fences else "(empty page)"
    moved = dict(ports or {})
    taken = busy_ports(moved.get(p, p) for p in page_ports(fences, root))
    if taken:
        raise BlockError(
            f"{page} listens on port(s) {', '.join(map(str, taken))}, and something already "
            "does: stop it (a server from scripts/run or an earlier run?) and try again"
        )
    work.mkdir(parents=True, exist_ok=True)
    script = work / "page.sh"
    script.write_text(f"cd {shlex.quote(str(project))}\n" + page_script(fences, root, moved))
    log = work / "page.log"
    started = time.monotonic()
    proc = processes.start(["bash", str(script)], env=env, log=log)
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        processes.stop(proc)
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    steps = re.findall(rf"^{_STEP} (\S+) ([\d.]+)$", text, re.M)
    last = steps[-1][0] if steps else "the start"
    tail = text[-processes.LOG_TAIL_CHARS :]
    if timed_out:
        raise BlockError(f"{page} took longer than {timeout} s; it was in {last}:\n{tail}")
    if proc.returncode != 0:
        raise BlockError(f"{page} failed in {last} (exit {proc.returncode}):\n{tail}")
    timed = [
        (step, float(later) - float(at)) for (step, at), (_, later) in itertools.pairwise(steps)
    ]
    return PageRun(page, elapsed, timed)


def run_newcomer(
    fences: list[Fence], root: Path, work: Path, env: Mapping[str, str], timeout: float
) -> PageRun:
    """Run a page as a newcomer would, from a copy of the project without a venv.

    The page's own blocks create the venv and install the project. Its ports are moved to
    free ones (and `WS_PORT` set), so it can run beside other tests.

    Args:
        fences: the page's blocks, in order.
        root: the project whose files are copied (as git lists them).
        work: a scratch folder; the copy goes in `work/hive-living-docs`.
        env: the environment the page runs in (see `reader_env`, with the project's venv
            hidden).
        timeout: longest the whole run may take, in seconds.

    Returns:
        The run's wall time and each step's.

    Raises:
        BlockError: a step failed or the run took longer than `timeout` seconds.
    """
    project = copy_project(root, work / "hive-living-docs")
    claimed = page_ports(fences, root) | {DEFAULT_PORT}
    ports = {p: processes.free_port() for p in claimed}
    # A bare `python -m reference_server` listens on the default port: move it too.
    env = {**env, "WS_PORT": str(ports[DEFAULT_PORT])}
    return run_page(
        fences, root=root, project=project, work=work, env=env, timeout=timeout, ports=ports
    )
