"""The catalogue of protocol frames, read from `schemas/ws_messages.schema.json`.

The direction of a frame comes from the schema's structure (it is one of `ClientFrame`'s or
`ServerFrame`'s alternatives), not from its prose. Every example is validated against the
whole schema and against its own definition, so a reference page can never show a frame the
server would refuse or never send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from ..errors import GenerateError
from .generator import read_text

__all__ = ["CLIENT", "SCHEMA", "SERVER", "Frame", "frames", "load_schema"]

SCHEMA = "schemas/ws_messages.schema.json"
"""The frame schema, relative to the repository root."""

CLIENT = "Client → Server"
"""Label of frames a client sends (AsyncAPI calls these the server's `receive`)."""

SERVER = "Server → Client"
"""Label of frames the server sends (AsyncAPI calls these the server's `send`)."""


@dataclass(frozen=True)
class Frame:
    """One frame type of the protocol.

    Attributes:
        name: the schema definition's name, which is also the TypeScript type's name.
        type: the `type` field's constant, or None for updates, whose type is open.
        direction: `CLIENT` or `SERVER`.
        definition: the frame's schema definition.
        examples: the definition's examples, each already validated.
    """

    name: str
    type: str | None
    direction: str
    definition: dict[str, Any]
    examples: tuple[dict[str, Any], ...]

    @property
    def summary(self) -> str:
        """The definition's description without its leading direction label."""
        text = str(self.definition.get("description", ""))
        return text.removeprefix(self.direction + ".").strip()


def load_schema(root: Path) -> dict[str, Any]:
    """The frame schema under `root`, checked to be a valid draft-07 schema.

    Raises:
        GenerateError: the file is not JSON or not a valid schema.
    """
    path = root / SCHEMA
    try:
        schema: dict[str, Any] = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise GenerateError(f"{SCHEMA} is not valid JSON: {exc}") from None
    errors = list(Draft7Validator(Draft7Validator.META_SCHEMA).iter_errors(schema))
    if errors:
        raise GenerateError(f"{SCHEMA} is not a valid draft-07 schema: {errors[0].message}")
    return schema


def _ref_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def frames(schema: dict[str, Any]) -> list[Frame]:
    """Every frame type in the schema, client frames first, each in the schema's order.

    Raises:
        GenerateError: a frame's example does not validate, or a frame has no example.
    """
    defs: dict[str, Any] = schema["definitions"]
    whole = Draft7Validator(schema)
    out = []
    for group, direction in (("ClientFrame", CLIENT), ("ServerFrame", SERVER)):
        for ref in defs[group]["oneOf"]:
            name = _ref_name(ref)
            definition = defs[name]
            own = Draft7Validator({**definition, "definitions": defs})
            examples = tuple(definition.get("examples", ()))
            if not examples:
                raise GenerateError(f"{SCHEMA}: {name} has no example; add one to `examples`")
            for example in examples:
                for validator in (whole, own):
                    error = next(iter(validator.iter_errors(example)), None)
                    if error is not None:
                        raise GenerateError(
                            f"{SCHEMA}: an example of {name} is invalid: {error.message}"
                        )
            type_schema = definition["properties"]["type"]
            out.append(Frame(name, type_schema.get("const"), direction, definition, examples))
    return out
