"""The `consolidate` command: merge a messy Markdown tree by topic, losing no unit of content.

`docs_automation.analyse` and `docs_automation.apply` run it; here are the types they take
and return, and `read_tree`, which loads the tree they work on.
"""

from __future__ import annotations

from .engine import Analysis, Settings
from .files import Tree, read_tree
from .verify import Verification

__all__ = ["Analysis", "Settings", "Tree", "Verification", "read_tree"]
