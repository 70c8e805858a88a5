"""`python -m docs_automation <command> [options]`: runs `cli.main` and exits with its status."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
