"""The maintainers' tools' one error tree, caught only at each command's boundary.

    ToolError
    ├── GenerateError          a generator cannot render: a tool failed or a source is
    │                          inconsistent (the command exits 2 with one line)
    ├── BlockError             a docs block failed or is wrong, or a tool it needs (the
    │                          browser) is missing; the message says how to fix it
    ├── ProcessError           a child process died or was not ready in time (with its log)
    └── ConsolidateError       the consolidator refused on purpose
        ├── SettingsError      a consolidator setting is out of range (names the setting)
        ├── InputError         SRC, DEST or an option is unusable (exit 2)
        └── VerificationError  the output would lose a unit or break a link; nothing is
                               published (exit 1)

Errors are raised deep and caught only where a command meets the terminal (its `cli`
module, or the generator shell), which turns each into one line and an exit status;
`docs_automation.main` is the last boundary, so no `ToolError` ever ends in a traceback.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = [
    "BlockError",
    "ConsolidateError",
    "GenerateError",
    "InputError",
    "ProcessError",
    "SettingsError",
    "ToolError",
    "VerificationError",
]

Found = TypeVar("Found")
"""What a `VerificationError` carries: the consolidator's `Verification` (from
`docs_automation.consolidate`). A type parameter, so that this leaf module imports nothing
from the consolidator."""


class ToolError(Exception):
    """Base of every error the maintainers' tools raise on purpose.

    The tree is drawn in `docs_automation.errors`. Catch it only at a command's boundary,
    where it becomes one line on standard error and an exit status.
    """


class GenerateError(ToolError):
    """A generator cannot produce its output: a tool failed or a source is inconsistent.

    The message is one sentence that names what to fix; the command prints it and exits 2.
    """


class BlockError(ToolError):
    """A docs block is wrong or failed when run; the message says how."""


class ProcessError(ToolError):
    """A child process exited early or was not ready within its time bound.

    The message names the process and ends with the tail of its log, when it has one.
    """


class ConsolidateError(ToolError):
    """Base of every error the consolidator raises on purpose."""


class SettingsError(ConsolidateError, ValueError):
    """A consolidator setting is out of range; the message names it."""


class InputError(ConsolidateError, ValueError):
    """SRC, DEST or an option cannot be used; the message says what to change."""


class VerificationError(ConsolidateError, Generic[Found]):
    """The output failed verification and was not published.

    Args:
        message: what would be lost or broken, one line per problem (the first few of each
            kind).
        verification: what the verifier found.

    Attributes:
        verification: what the verifier found (a `docs_automation.consolidate.Verification`);
            pass it to the report, which the command still writes so that the reviewer can
            see every lost unit and broken link.
    """

    def __init__(self, message: str, verification: Found) -> None:
        super().__init__(message)
        self.verification = verification
