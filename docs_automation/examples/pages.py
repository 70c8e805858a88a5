"""The newcomer run: a page's blocks in order, in a fresh copy of the project, timed.

The copy holds the project's files as git sees them (tracked, plus new files not ignored),
so there is no `.venv` and no `node_modules`: the page's own blocks create the virtual
environment, install the project and start the server, exactly as a reader would. All the
blocks run in one shell, so `source .venv/bin/activate` carries on to the next block, and
each block is timed.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import time
from pathlib import Path

from .. import processes
from ..errors import BlockError
from .fences import ILLUSTRATIVE, Fence, classify
from .runners import DEFAULT_PORT, background_ports, console_pairs, rewrite

__all__ = ["copy_project", "newcomer_script", "run_newcomer"]

_STEP = "@@hive-step"
# Blocks that are data, not steps: validated elsewhere, nothing for a newcomer to run.
_NOT_STEPS = frozenset({ILLUSTRATIVE, "frame", "settings", "markdown", "mermaid", "prometheus"})


def copy_project(root: Path, dest: Path) -> Path:
    """Copy the project's files (as git lists them, ignored ones left out) into `dest`."""
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


def newcomer_script(fences: list[Fence], ports: dict[int, int], root: Path) -> str:
    """One bash script running `fences` in order, printing a timed marker before each."""
    lines = ["set -euo pipefail"]
    for fence in fences:
        kind = classify(fence)
        if kind in _NOT_STEPS:
            continue
        source = rewrite(fence.source(root), ports)
        # A leading newline: the previous step's output may not end with one (curl).
        lines.append(f'printf "\\n{_STEP} {fence.id} %s\\n" "$(date +%s.%N)"')
        if kind == "python":
            lines += ["python - <<'HIVE_EXAMPLE_EOF'", source.rstrip("\n"), "HIVE_EXAMPLE_EOF"]
        elif kind == "console":
            lines += [command for command, _ in console_pairs(source)]
        elif kind in ("bash", "newcomer"):
            lines.append(source.rstrip("\n"))
        else:
            raise BlockError(f"{fence.id}: a `{fence.lang}` block cannot run in the newcomer run")
    lines.append(f'printf "\\n{_STEP} end %s\\n" "$(date +%s.%N)"')
    return "\n".join(lines) + "\n"


def run_newcomer(
    fences: list[Fence], root: Path, work: Path, env: dict[str, str], timeout: float
) -> tuple[float, list[tuple[str, float]]]:
    """Run a page's `fences` as a newcomer would; return its wall time and each step's.

    Args:
        fences: the page's blocks, in order.
        root: the project whose files are copied (as git lists them).
        work: a scratch folder; the copy goes in `work/hive-living-docs`.
        env: the environment the page runs in (a private HOME, no project venv on PATH);
            `WS_PORT` is set here.
        timeout: longest the whole run may take, in seconds.

    Returns:
        The run's wall time and each step's `(block id, seconds)`.

    Raises:
        BlockError: a step failed (with the step's id and the output's tail) or the run
            took longer than `timeout` seconds.
    """
    project = copy_project(root, work / "hive-living-docs")
    claimed = {p for f in fences for p in background_ports(f.body)} | {DEFAULT_PORT}
    ports = {p: processes.free_port() for p in claimed}
    env = {**env, "WS_PORT": str(ports[DEFAULT_PORT])}
    script = work / "newcomer.sh"
    script.write_text(f"cd {shlex.quote(str(project))}\n" + newcomer_script(fences, ports, root))
    log = work / "newcomer.log"
    started = time.monotonic()
    proc = processes.start(["bash", str(script)], env=env, log=log)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise BlockError(f"the newcomer run took longer than {timeout} s") from None
    finally:
        processes.stop(proc)
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    steps = re.findall(rf"^{_STEP} (\S+) ([\d.]+)$", text, re.M)
    if proc.returncode != 0:
        last = steps[-1][0] if steps else "the start"
        tail = text[-processes.LOG_TAIL_CHARS :]
        raise BlockError(f"the newcomer run failed in {last}:\n{tail}")
    timed = [
        (step, float(later) - float(at)) for (step, at), (_, later) in itertools.pairwise(steps)
    ]
    return elapsed, timed
