"""TypeScript types for PWA developers, made from the frame schema by json-schema-to-typescript.

The schema's `oneOf` of `$ref`s becomes a union of interfaces whose `type` fields are string
literals, so a `switch (frame.type)` narrows it (a discriminated union). quicktype is not used
because it flattens the union into one loose type. The client package
`clients/typescript/` compiles the same text as `src/ws_messages.ts`, so its types are
generated too and drift-checked with the page.
"""

from __future__ import annotations

from pathlib import Path

from .generator import Rendered, read_text
from .node import run_node
from .schema import SCHEMA

__all__ = ["CLIENT_TYPES", "TYPES", "render"]

TYPES = "docs/reference/ws_messages.d.ts"
"""Where the generated declarations go, relative to the repository root."""
CLIENT_TYPES = "clients/typescript/src/ws_messages.ts"
"""The same declarations inside the client package's sources, so its types are never a copy."""

# Reads the schema on stdin, prints the declarations. `additionalProperties: false` in the
# options keeps objects without that keyword open-ended only where the schema says so.
_COMPILE = """
const { compile } = require("json-schema-to-typescript");
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const ts = await compile(JSON.parse(input), "WsMessage", {
    bannerComment: "",
    additionalProperties: false,
    strictIndexSignatures: true,
    unreachableDefinitions: true,
    format: true,
  });
  process.stdout.write(ts);
});
"""

_BANNER = (
    "/**\n"
    " * Types of every dashboard WebSocket frame, generated from {schema}\n"
    " * by `python -m docs_automation apiref` (json-schema-to-typescript). Do not edit.\n"
    " *\n"
    " * Send a `ClientFrame`; every message received is a `ServerFrame`. Switch on `type`:\n"
    " * frames with a `seq` are updates (`Update`, `CriticalAlert`).\n"
    " */\n"
)


def render(root: Path) -> Rendered:
    """`ws_messages.d.ts` from the schema under `root`.

    Raises:
        GenerateError: node or json-schema-to-typescript is missing, or the schema is invalid.
    """
    declarations = run_node(root, _COMPILE, stdin=read_text(root / SCHEMA))
    text = _BANNER.format(schema=SCHEMA) + declarations
    # A `.ts` file, not `.d.ts`: tsc emits declarations for it into the package's dist/.
    return {TYPES: text, CLIENT_TYPES: text}
