"""The reference pages' command line: `python -m docs_automation apiref` writes or checks them.

REST from the app's OpenAPI document, the WebSocket protocol (page, AsyncAPI document and
TypeScript types) from `schemas/ws_messages.schema.json`, the TypeScript client's API page from
its sources (TypeDoc), and the configuration, command-line,
metrics and Python API pages from the code itself. `--check` fails when any is stale.
"""

from __future__ import annotations

from typing import Any

from . import (
    asyncapi,
    clientapi,
    commandline,
    configuration,
    metrics,
    protocol,
    pythonapi,
    rest,
    typescript,
)
from .generator import Step, add_generator

__all__ = ["STEPS", "register"]

STEPS: tuple[Step, ...] = (
    ("REST reference", rest.render),
    ("protocol reference", protocol.render),
    ("AsyncAPI document", asyncapi.render),
    ("TypeScript types", typescript.render),
    ("TypeScript client API", clientapi.render),
    ("configuration reference", configuration.render),
    ("command-line reference", commandline.render),
    ("metrics reference", metrics.render),
    ("Python API", pythonapi.render),
)
"""What `apiref` renders, in order; the Node steps are the slow ones."""


def register(subcommands: Any) -> None:
    """Add the `apiref` command to `subcommands` (an argparse subparsers action)."""
    add_generator(
        subcommands,
        "apiref",
        "Write the generated reference pages under docs/reference/ (or --check them).",
        STEPS,
    )
