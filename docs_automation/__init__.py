"""The maintainers' tools: living-docs checker, reference generators, docs consolidator.

Run them with `python -m docs_automation <command>` (`main`). From Python: consolidate a
tree with `analyse` then `apply`, prove docs blocks with a `Harness`, and start, wait for
and stop child processes with `processes`.

Every error raised on purpose is a `ToolError`, from one small tree (drawn in full, with
exit statuses, in `docs_automation.errors`):

    ToolError
    ├── GenerateError          a generator cannot render
    ├── BlockError             a docs block failed, or a tool it needs is missing
    ├── ProcessError           a child process died or was not ready in time
    └── ConsolidateError       the consolidator refused on purpose
        ├── SettingsError      a consolidator setting is out of range
        ├── InputError         SRC, DEST or an option is unusable
        └── VerificationError  the output would lose a unit or break a link

Catch them only at a command's boundary; each command prints one line and exits non-zero.
"""

from __future__ import annotations

from . import processes
from .apiref.generator import Step
from .cli import main
from .consolidate.engine import analyse, apply
from .consolidate.plan import Plan
from .errors import (
    BlockError,
    ConsolidateError,
    GenerateError,
    InputError,
    ProcessError,
    SettingsError,
    ToolError,
    VerificationError,
)
from .examples.harness import Harness

__all__ = [
    "BlockError",
    "ConsolidateError",
    "GenerateError",
    "Harness",
    "InputError",
    "Plan",
    "ProcessError",
    "SettingsError",
    "Step",
    "ToolError",
    "VerificationError",
    "analyse",
    "apply",
    "main",
    "processes",
]
