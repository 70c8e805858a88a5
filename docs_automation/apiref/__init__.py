"""The `apiref` and `diagrams` commands: reference pages generated from the code, drift-checked.

Each page generator is a pure `render(root) -> Rendered`; `STEPS` lists `apiref`'s, and
`run` renders steps then writes them or, with `check`, reports the stale files.
"""

from __future__ import annotations

from .cli import STEPS
from .generator import Rendered, add_generator, run

__all__ = ["STEPS", "Rendered", "add_generator", "run"]
