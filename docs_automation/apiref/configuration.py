"""The configuration page (`docs/reference/configuration.md`), from `Settings` itself.

Every field of the `Settings` dataclass, with its environment variable, default, unit and
the meaning written in `SETTING_DOCS`. A setting without a written meaning stops the
generator, so the page can never list a name without saying what it does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reference_server import Settings
from reference_server.settings import RATE_MIN_TOKENS_PER_SEC, SETTING_DOCS, SETTING_MAXIMA

from ..errors import GenerateError
from .generator import Rendered
from .markdown import banner, code, table

__all__ = ["PAGE", "configuration", "render"]

PAGE = "docs/reference/configuration.md"
"""The configuration page, relative to the repository root."""


def _default(value: object) -> str:
    if isinstance(value, bool):
        return code(str(value).lower())
    if value is None:
        return "(chosen; see Meaning)"  # derived from other settings at start-up
    if value in ("", ()):
        return "(empty)"
    if isinstance(value, tuple):
        return code(",".join(map(str, value)))
    return code(value)


def _most(name: str) -> str:
    most = SETTING_MAXIMA.get(name)
    if most is None:
        return "—"
    return code(int(most) if float(most).is_integer() else most)


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
        rows.append(
            (
                code(Settings.env_name(f.name)),
                _default(f.default),
                unit or "—",
                _most(f.name),
                meaning,
            )
        )
    return (
        banner("apiref", "reference_server.settings")
        + "\n# Configuration\n\nEvery limit and switch of the reference server is an environment "
        "variable, read once at start-up. A value out of range stops the server with a sentence "
        "naming the variable; an unknown `WS_*` name is refused too, so a typo cannot leave a "
        "default in force. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` "
        "(empty is false); numbers are ASCII digits; lists are comma-separated. Numbers are "
        "never negative, and a setting with an *At most* bound refuses anything above it "
        "(past it the protection it stands for would be off: nesting deeper than Python's "
        "recursion limit, a wait or window over a day, a byte bound over 1 GiB); "
        f"the refill rate is at least {RATE_MIN_TOKENS_PER_SEC:g} tokens/s. A runtime "
        "change (`PATCH /api/dashboard/websocket/limits`) is held to the same bounds.\n\n"
        + table(("Variable", "Default", "Unit", "At most", "Meaning"), rows)
    )


def render(root: Path) -> Rendered:
    """The configuration page (`root` is unused: the page comes from the imported code)."""
    return {PAGE: configuration()}
