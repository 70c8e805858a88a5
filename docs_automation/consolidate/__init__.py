"""The docs consolidator: a messy Markdown tree merged by topic, losing no unit of content.

`read_tree` loads a tree; `docs_automation.analyse` plans its consolidation and
`docs_automation.apply` writes and verifies it. Here are the types they take and return.
The command line around them is `python -m docs_automation consolidate` (the `cli` module).
"""

from __future__ import annotations

from .engine import Analysis, Settings
from .files import Tree, read_tree
from .verify import Verification

__all__ = ["Analysis", "Settings", "Tree", "Verification", "read_tree"]
