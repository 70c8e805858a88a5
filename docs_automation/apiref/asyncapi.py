"""The AsyncAPI 3.1 document of the WebSocket protocol, validated with `@asyncapi/parser`.

Each message's payload is a `$ref` into `schemas/ws_messages.schema.json`, so the document
adds the channel, the operations and the request/reply pairs but never a second copy of a
frame. AsyncAPI speaks from the server's side (`send` is Server → Client), which front-end
readers misread, so every operation's title also names the direction plainly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from reference_server import WS_PATH, Settings

from ..errors import GenerateError
from .generator import Rendered
from .node import run_node
from .schema import CLIENT, SCHEMA, Frame, frames, load_schema

__all__ = ["DOCUMENT", "QUERY", "document", "render", "validate"]

DOCUMENT = "docs/reference/asyncapi.yaml"
"""Where the document goes, relative to the repository root."""

QUERY: dict[str, str] = {
    "subscriptions": "Comma-separated initial subscriptions; validated like a `subscribe`.",
    "resume": "Comma-separated `subscription:seq` pairs: replay what came after each seq.",
    "access_token": "The token, when auth is required and a header cannot be set.",
}
"""Query parameters of the WebSocket URL, as the app reads them (`Connection.run`)."""

# Client frame type -> the server frame types that answer it (AsyncAPI `reply`).
_REPLIES: dict[str, tuple[str, ...]] = {
    "ping": ("pong",),
    "subscribe": ("subscription_updated",),
    "unsubscribe": ("subscription_updated",),
    "request_data": ("data_response", "data_error"),
}

# Parses the document on stdin (with `source` so relative $refs resolve) and prints its
# diagnostics as JSON. Severity 0 is an error; the rest are advice.
_VALIDATE = """
const { Parser } = require("@asyncapi/parser");
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const { diagnostics } = await new Parser().parse(input, { source: process.argv[1] });
  process.stdout.write(JSON.stringify(diagnostics.map((d) => ({
    severity: d.severity, message: d.message, path: d.path.join("/") }))));
});
"""


def _message(frame: Frame, schema_ref: str) -> dict[str, Any]:
    return {
        "name": frame.type or "update",
        "title": frame.name,
        "summary": f"{frame.direction}. {frame.summary}",
        "contentType": "application/json",
        "payload": {"$ref": f"{schema_ref}#/definitions/{frame.name}"},
        "examples": [{"payload": example} for example in frame.examples],
    }


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI document for `schema`, as plain data (see `render` for the YAML)."""
    settings = Settings()
    schema_ref = "../../" + SCHEMA  # relative to DOCUMENT
    catalogue = frames(schema)
    messages = {f.name: _message(f, schema_ref) for f in catalogue}
    by_type = {f.type: f.name for f in catalogue if f.type}
    operations: dict[str, Any] = {}
    for f in catalogue:
        client = f.direction == CLIENT
        op: dict[str, Any] = {
            "action": "receive" if client else "send",
            "title": f"{f.direction}: {f.type or 'updates'}",
            "summary": f.summary,
            "channel": {"$ref": "#/channels/dashboard"},
            "messages": [{"$ref": f"#/channels/dashboard/messages/{f.name}"}],
        }
        if client and f.type in _REPLIES:
            op["reply"] = {
                "channel": {"$ref": "#/channels/dashboard"},
                "messages": [
                    {"$ref": f"#/channels/dashboard/messages/{by_type[t]}"}
                    for t in _REPLIES[f.type]
                ],
            }
        operations[("receive" if client else "send") + f.name] = op
    query = {
        "type": "object",
        "properties": {k: {"type": "string", "description": v} for k, v in QUERY.items()},
    }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Agent Hive dashboard WebSocket protocol",
            "version": schema["x-contract-version"],
            "description": (
                f"{schema['description']}\n\nOperations are seen from the server: `receive` "
                f"is {CLIENT}, `send` is Server → Client."
            ),
            "license": {"name": "MIT"},
        },
        "servers": {
            "development": {
                "host": f"{settings.host}:{settings.port}",
                "protocol": "ws",
                "description": "The reference server started with no options.",
            }
        },
        "defaultContentType": "application/json",
        "channels": {
            "dashboard": {
                "address": WS_PATH,
                "title": "Dashboard",
                "description": "One JSON object per text message, in both directions.",
                "messages": messages,
                "bindings": {"ws": {"method": "GET", "query": query}},
            }
        },
        "operations": operations,
    }


def validate(root: Path, text: str) -> list[str]:
    """Validate the AsyncAPI `text` as if it were `DOCUMENT` under `root`; return warnings.

    Raises:
        GenerateError: the parser reported an error (the first one is named).
    """
    out = run_node(root, _VALIDATE, stdin=text, args=[str(root / DOCUMENT)])
    diagnostics: list[dict[str, Any]] = json.loads(out)
    errors = [d for d in diagnostics if d["severity"] == 0]
    if errors:
        first = errors[0]
        raise GenerateError(
            f"{DOCUMENT} is invalid AsyncAPI at /{first['path']}: {first['message']}"
        )
    return [f"/{d['path']}: {d['message']}" for d in diagnostics]


def render(root: Path) -> Rendered:
    """The AsyncAPI document under `root`, after `@asyncapi/parser` accepted it.

    Raises:
        GenerateError: the schema is invalid or the parser refused the document.
    """
    data = document(load_schema(root))
    # width: the repository's line length (ruff), so the committed file reads like the code
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    text = f"# Generated from {SCHEMA} by `python -m docs_automation apiref`. Do not edit.\n" + text
    validate(root, text)
    return {DOCUMENT: text}
