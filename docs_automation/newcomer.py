"""The newcomer run: a page's blocks in order, in a fresh copy of the project, timed.

The copy holds the project's files as git sees them (tracked, plus new files not ignored),
so there is no `.venv` and no `node_modules`: the page's own blocks create the virtual
environment, install the project and start the server, exactly as a reader would. All the
blocks run in one shell, so `source .venv/bin/activate` carries on to the next block, and
each block is timed.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .fences import ILLUSTRATIVE, Fence, classify
from .runners import DEFAULT_PORT, background_ports, console_pairs, free_port, rewrite, stop_group
from .validators import BlockError

if TYPE_CHECKING:
    from .examples import Harness

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
    harness: Harness, page: str, timeout: float
) -> tuple[float, list[tuple[str, float]]]:
    """Run `page` as a newcomer would; return its wall time and each step's, in seconds.

    Raises:
        BlockError: a step failed (with the step's id and the output's tail) or the run
            took longer than `timeout` seconds.
    """
    fences = harness.page_fences(page)
    work = harness.tmp / "newcomer"
    project = copy_project(harness.root, work / "hive-living-docs")
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    claimed = {p for f in fences for p in background_ports(f.body)} | {DEFAULT_PORT}
    ports = {p: free_port() for p in claimed}
    # No project venv on PATH: the page must make its own.
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d != harness.bin_dir
    )
    env = harness.env(home, None)
    env.update({"PATH": path, "WS_PORT": str(ports[DEFAULT_PORT])})
    env.pop("VIRTUAL_ENV", None)
    script = work / "newcomer.sh"
    script.write_text(
        f"cd {shlex.quote(str(project))}\n" + newcomer_script(fences, ports, harness.root)
    )
    log = work / "newcomer.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(script)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BlockError(f"the newcomer run took longer than {timeout} s") from None
        finally:
            stop_group(proc)
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    steps = re.findall(rf"^{_STEP} (\S+) ([\d.]+)$", text, re.M)
    if proc.returncode != 0:
        last = steps[-1][0] if steps else "the start"
        raise BlockError(f"the newcomer run failed in {last}:\n{text[-3000:]}")
    timed = [
        (step, float(later) - float(at)) for (step, at), (_, later) in itertools.pairwise(steps)
    ]
    return elapsed, timed
