"""The maintainers' tools: living-docs checker, reference generators, docs consolidator.

Run them with `python -m docs_automation <command>` (`main`). From Python: consolidate a
tree with `analyse` then `apply`, prove docs blocks with a `Harness`, and start, wait for
and stop child processes with `processes`. Every error raised on purpose is a `ToolError`.
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
