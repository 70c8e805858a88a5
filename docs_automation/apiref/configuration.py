"""The configuration page (`docs/reference/configuration.md`), from `Settings` itself.

Every field of the `Settings` dataclass, with its environment variable, default, unit and
the meaning written in `SETTING_DOCS`. A setting without a written meaning stops the
generator, so the page can never list a name without saying what it does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reference_server import Settings
from reference_server.settings import SETTING_DOCS

from ..errors import GenerateError
from .generator import Rendered
from .markdown import banner, code, table

__all__ = ["PAGE", "configuration", "render"]

PAGE = "docs/reference/configuration.md"
"""The configuration page, relative to the repository root."""


def _default(value: object) -> str:
    if isinstance(value, bool):
        return code(str(value).lower())
    if value in ("", ()):
        return "(empty)"
    if isinstance(value, tuple):
        return code(",".join(map(str, value)))
    return code(value)


def configuration() -> str:
    """The configuration page: every `Settings` field, in declaration order.

    Raises:
        GenerateError: a field has no entry in `SETTING_DOCS`.
    """
    rows = []
    for f in dataclasses.fields(Settings):
        if f.name not in SETTING_DOCS:
            raise GenerateError(f"setting {f.name} has no entry in SETTING_DOCS")
        unit, meaning = SETTING_DOCS[f.name]
        rows.append((code(Settings.env_name(f.name)), _default(f.default), unit or "—", meaning))
    return (
        banner("apiref", "reference_server.settings")
        + "\n# Configuration\n\nEvery limit and switch of the reference server is an environment "
        "variable, read once at start-up. A value out of range stops the server with a sentence "
        "naming the variable; an unknown `WS_*` name is refused too, so a typo cannot leave a "
        "default in force. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; "
        "lists are comma-separated.\n\n" + table(("Variable", "Default", "Unit", "Meaning"), rows)
    )


def render(root: Path) -> Rendered:
    """The configuration page (`root` is unused: the page comes from the imported code)."""
    return {PAGE: configuration()}
