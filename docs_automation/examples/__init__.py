"""The docs example harness: every fenced block of the docs run or validated for real.

Here is how blocks are found (`docs_fences`, `scan`) and classified (`classify`);
`docs_automation.Harness` proves one block. The docs tests run every block under pytest,
and `python -m docs_automation examples` (the `cli` module) runs them outside it.
"""

from __future__ import annotations

from .fences import Fence, classify, scan
from .harness import docs_fences

__all__ = ["Fence", "classify", "docs_fences", "scan"]
