"""The `examples` command: every fenced block of the docs run or validated for real.

`docs_automation.Harness` proves one block; here is how blocks are found and classified.
"""

from __future__ import annotations

from .fences import Fence, classify, scan
from .harness import docs_fences

__all__ = ["Fence", "classify", "docs_fences", "scan"]
