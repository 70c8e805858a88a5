"""The protocol reference page (`docs/reference/protocol.md`), from the schema and the code.

Frames, their fields and examples come from `schemas/ws_messages.schema.json`; the messages
each error code is sent with are read from the server's source (every `FrameError(...)` and
`_error(...)` call), and close codes from `reference_server.session.CLOSE_CODES`. Sources that
disagree (a code the server sends that the schema lacks, a disconnect reason without a close
code) stop the generator instead of producing a page that contradicts the server.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reference_server import WS_PATH, Settings
from reference_server.messages import DEFAULT_SUBSCRIPTIONS
from reference_server.session import CLOSE_CODES

from ..errors import GenerateError
from .asyncapi import QUERY
from .generator import Rendered, read_text
from .markdown import banner, code, fence, json_fence, table
from .schema import SCHEMA, Frame, frames, load_schema
from .sequences import sequences

__all__ = ["PAGE", "error_messages", "page", "render", "type_of"]

PAGE = "docs/reference/protocol.md"
"""Where the page goes, relative to the repository root."""

# RFC 6455 §7.4.1 names of the standard close codes; 4000-4999 are the application's own.
_RFC6455 = {
    1000: "Normal Closure",
    1001: "Going Away",
    1008: "Policy Violation",
    1009: "Message Too Big",
    1011: "Internal Error",
    1013: "Try Again Later",
}

# Disconnect reason -> the settings that decide when it happens.
_GOVERNED_BY = {
    "rate_limited": ("flood_drop_threshold", "flood_window_seconds"),
    "backpressure": (
        "send_queue_max_messages",
        "send_queue_max_bytes",
        "backpressure_disconnect_threshold",
    ),
    "idle_timeout": ("idle_disconnect_seconds",),
    "unauthorized": ("auth_required", "auth_token"),
    "forbidden_origin": ("allowed_origins",),
    "server_shutdown": ("shutdown_grace_seconds",),
}

# The frame unions: every other definition that is not a frame is a common type.
_UNIONS = ("ClientFrame", "ServerFrame")


def type_of(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """A field's JSON Schema type in words, for a table cell."""
    if "$ref" in prop:
        name = str(prop["$ref"]).rsplit("/", 1)[-1]
        return f"[`{name}`](#common-types)"
    if "const" in prop:
        return code(f'"{prop["const"]}"')
    if "enum" in prop:
        return "one of " + ", ".join(code(v) for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array":
        items = type_of(prop.get("items", {}), defs)
        cap = f" (at most {prop['maxItems']} items)" if "maxItems" in prop else ""
        return f"array of {items}{cap}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), Mapping):
        return f"object of string → {type_of(prop['additionalProperties'], defs)}"
    if kind == "integer" and "minimum" in prop:
        return f"integer ≥ {prop['minimum']}"
    if kind == "string" and "maxLength" in prop:
        return f"string, at most {prop['maxLength']} characters"
    return str(kind)


def _template(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_template(v) if isinstance(v, ast.Constant) else "…" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template(node.left) + _template(node.right)
    return "…"


def error_messages(package: Path) -> dict[str, list[str]]:
    """Error code to the messages the server sends with it, read from `package`'s source.

    Every call `FrameError(code, message, ...)` or `_error(code, message, ...)` with a literal
    code counts, in every module of the package and its subfolders; a message's computed
    parts are shown as `…`.
    """
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(read_text(path))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("FrameError", "_error") and isinstance(first, ast.Constant):
                found.setdefault(str(first.value), set()).add(_template(node.args[1]))
    return {k: sorted(v) for k, v in sorted(found.items())}


def _frame_section(f: Frame, defs: Mapping[str, Any]) -> str:
    props: Mapping[str, Any] = f.definition["properties"]
    required = set(f.definition.get("required", ()))
    rows = []
    for name, prop in props.items():
        described = prop.get("description") or defs.get(
            str(prop.get("$ref", "")).rsplit("/", 1)[-1], {}
        ).get("description", "")
        rows.append(
            (code(name), type_of(prop, defs), "yes" if name in required else "no", described)
        )
    extra = (
        "" if f.definition.get("additionalProperties") is False else "Other fields are allowed.\n\n"
    )
    examples = "\n".join(json_fence(e) for e in f.examples)
    label = "Example" if len(f.examples) == 1 else "Examples"
    return (
        f"### {f.type or 'updates'}\n\n**{f.direction}** · TypeScript type `{f.name}`\n\n"
        f"{f.summary}\n\n{table(('Field', 'Type', 'Required', 'Meaning'), rows)}\n{extra}"
        f"{label}:\n\n{examples}\n"
    )


def _codes_section(schema: Mapping[str, Any], package: Path) -> str:
    defs = schema["definitions"]
    sent = error_messages(package)
    enum = list(defs["ErrorCode"]["enum"])
    unknown = sorted(set(sent) - set(enum))
    if unknown:
        raise GenerateError(f"the server sends error codes missing from {SCHEMA}: {unknown}")
    rows = [
        (code(c), "; ".join(code(m) for m in sent[c]) if c in sent else "not sent by this server")
        for c in enum
    ]
    reasons = list(defs["DisconnectReason"]["enum"])
    if set(reasons) != set(CLOSE_CODES):
        raise GenerateError(
            f"disconnect reasons in {SCHEMA} {sorted(reasons)} differ from "
            f"reference_server.session.CLOSE_CODES {sorted(CLOSE_CODES)}"
        )
    closes = []
    for reason in reasons:
        number = CLOSE_CODES[reason]
        meaning = _RFC6455.get(number, "application-defined (4000–4999)")
        governed = ", ".join(code(Settings.env_name(n)) for n in _GOVERNED_BY.get(reason, ()))
        closes.append((code(reason), number, meaning, governed))
    transport = Settings.env_name("max_frame_bytes")
    # RFC 6455 §7.4.1: 1009 = message too big, sent by the transport, not by the session
    closes.append(
        ("(no notice)", 1009, _RFC6455[1009], f"{code(transport)}: the transport refuses the frame")
    )
    return (
        "## Error codes\n\nAn `error` frame never closes the connection. Its `code` is stable; "
        "its `message` keeps the original platform's wording.\n\n"
        + table(("Code", "Messages sent"), rows)
        + "\n## Close codes\n\nEvery close the server starts is preceded by a "
        "`disconnect_notice` naming the reason. Settings are described in "
        "[Configuration](configuration.md).\n\n"
        + table(("Reason", "Close code", "RFC 6455 meaning", "Decided by"), closes)
    )


def _common_types(defs: Mapping[str, Any], frame_names: set[str]) -> str:
    """Every definition a frame field refers to (`$ref`) that is not a frame itself."""
    rows = [
        (
            code(n),
            type_of({k: v for k, v in defs[n].items() if k != "description"}, defs),
            defs[n].get("description", ""),
        )
        for n in defs
        if n not in frame_names and n not in _UNIONS
    ]
    return "## Common types\n\n" + table(("Type", "Definition", "Meaning"), rows)


def page(root: Path, schema: dict[str, Any]) -> str:
    """The protocol page's Markdown for `schema`, reading the server's source under `root`."""
    defs = schema["definitions"]
    catalogue = frames(schema)
    settings = Settings()
    url = f"ws://{settings.host}:{settings.port}{WS_PATH}"
    anchors = [
        (f"[{f.type or 'updates'}](#{f.type or 'updates'})", f.direction, f.summary)
        for f in catalogue
    ]
    query = [(code(k), v) for k, v in QUERY.items()]
    diagrams = "".join(
        f"### {title}\n\n{fence('mermaid', body, illustrative=False)}\n"
        for title, body in sequences(schema, settings, CLOSE_CODES).items()
    )
    return (
        banner("apiref", f"{SCHEMA} and reference_server") + "\n# WebSocket protocol\n\n"
        f"Connect to `{url}`. Every frame is one JSON object in one text message. "
        f"Contract version {code(schema['x-contract-version'])}; the server also accepts "
        + ", ".join(code(v) for v in schema["x-supported-contract-versions"])
        + ". The same frames are described for tools by the [AsyncAPI document](asyncapi.yaml) "
        "and for TypeScript by [`ws_messages.d.ts`](ws_messages.d.ts).\n\n"
        "## Connecting\n\n"
        + table(("Query parameter", "Meaning"), query)
        + "\nWithout `subscriptions`, a connection starts with "
        + ", ".join(code(n) for n in DEFAULT_SUBSCRIPTIONS)
        + ". When auth is required, send the token as `Authorization: Bearer <token>` "
        "or as `access_token`.\n\n## Frames\n\n"
        + table(("Frame", "Direction", "What it does"), anchors)
        + "\n"
        + "".join(_frame_section(f, defs) for f in catalogue)
        + _common_types(defs, {f.name for f in catalogue})
        + "\n"
        + _codes_section(schema, root / "reference_server")
        + "\n## Sequences\n\n"
        + diagrams
    ).rstrip() + "\n"


def render(root: Path) -> Rendered:
    """The protocol page under `root`.

    Raises:
        GenerateError: the schema is invalid or disagrees with the server's code.
    """
    return {PAGE: page(root, load_schema(root))}
