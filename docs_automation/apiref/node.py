"""Running the project's Node tools (installed into `node_modules/` by `scripts/bootstrap`).

The AsyncAPI parser, json-schema-to-typescript and tsc exist only on npm, so the generators
call them through node rather than reimplementing them. A missing node or `node_modules` is
a failure with a sentence that says how to fix it, never a silent skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import GenerateError

__all__ = ["NODE_TIMEOUT_SECONDS", "run_node", "run_tool"]

_ERROR_LINE = re.compile(r"\b(\w*Error|error)(:| TS\d+)")

NODE_TIMEOUT_SECONDS = 120.0
"""Longest a single Node tool may run, in seconds, before the generator gives up."""


def _env(root: Path) -> dict[str, str]:
    # NODE_PATH lets `require` in an inline script find the project's packages.
    return {**os.environ, "NODE_PATH": str(root / "node_modules")}


def run_tool(root: Path, argv: Sequence[str], stdin: str = "") -> str:
    """Run `argv` in `root` with the project's Node packages on NODE_PATH; return stdout.

    Raises:
        GenerateError: the tool is missing, timed out, or exited non-zero (with its error).
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=root,
            env=_env(root),
            timeout=NODE_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise GenerateError(f"{argv[0]} is not installed; run scripts/bootstrap") from None
    except subprocess.TimeoutExpired:
        raise GenerateError(f"{argv[0]} ran longer than {NODE_TIMEOUT_SECONDS} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        # node prints the failing source line before the error, tsc a summary after it: pick
        # the line that names the error (`Error: ...`, `error TS2322: ...`).
        reason = next((line for line in lines if _ERROR_LINE.search(line)), lines[-1])
        raise GenerateError(f"{Path(argv[0]).name} exited {proc.returncode}: {reason.strip()}")
    return proc.stdout


def run_node(root: Path, script: str, stdin: str = "", args: Sequence[str] = ()) -> str:
    """Run the CommonJS `script` with node in `root`, feeding it `stdin`; return its stdout.

    Raises:
        GenerateError: node or `node_modules` is missing, or the script failed.
    """
    node = shutil.which("node")
    if node is None:
        raise GenerateError("node is not on PATH; install Node.js 20 or newer")
    if not (root / "node_modules").is_dir():
        raise GenerateError(f"{root / 'node_modules'} is missing; run scripts/bootstrap")
    return run_tool(root, [node, "-e", script, "--", *args], stdin)
