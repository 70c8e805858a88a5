"""The reference-page generators: pages rendered from the code and the schema, drift-checked.

Each page generator is a pure `render(root) -> Rendered`; `STEPS` lists the ones behind
`python -m docs_automation apiref` (the `cli` module), `architecture` is the one behind
`diagrams`, and `run` renders steps then writes them or, with `check`, reports the stale
files. `add_generator` registers such a command.
"""

from __future__ import annotations

from .cli import STEPS
from .generator import Rendered, add_generator, run

__all__ = ["STEPS", "Rendered", "add_generator", "run"]
