"""The frame schema: valid, self-consistent, and compatible with the original platform's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from reference_server.messages import SCHEMA
from tests.procs import ServerProcess
from tests.wsclient import Client

DEFS = SCHEMA["definitions"]
CLIENT = [r["$ref"].rsplit("/", 1)[1] for r in DEFS["ClientFrame"]["oneOf"]]
SERVER = [r["$ref"].rsplit("/", 1)[1] for r in DEFS["ServerFrame"]["oneOf"]]


def validator(definition: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        {"$ref": f"#/definitions/{definition}", **SCHEMA}, format_checker=jsonschema.FormatChecker()
    )


@pytest.mark.unit
def test_schema_is_valid_draft_07() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.unit
@pytest.mark.parametrize("name", CLIENT + SERVER)
def test_every_frame_type_has_examples_that_validate_as_exactly_one_type(name: str) -> None:
    examples = DEFS[name]["examples"]
    assert examples
    side = "ClientFrame" if name in CLIENT else "ServerFrame"
    for example in examples:
        validator(name).validate(example)
        validator(side).validate(example)  # oneOf: matches exactly one branch
        jsonschema.Draft7Validator(SCHEMA).validate(example)


def _reference_branch(reference: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The original schema's branch that defines frame type `kind`, if any."""
    for branch in reference["oneOf"]:
        prop = branch["properties"]["type"]
        if prop.get("const") == kind:
            return dict(branch)
    for branch in reference["oneOf"]:
        prop = branch["properties"]["type"]
        if "pattern" in prop and jsonschema.Draft202012Validator(prop).is_valid(kind):
            return dict(branch)
    return None


@pytest.mark.integration
def test_live_frames_validate_against_the_original_platform_schema(
    shared_dir: Path, server: ServerProcess
) -> None:
    reference = json.loads((shared_dir / "reference/bee-hive-ws_messages.schema.json").read_text())
    url = f"{server.http}/api/dashboard/websocket/broadcast"
    with Client(server.ws + "?subscriptions=agents,alerts,tasks,coordination,system") as c:
        c.recv()
        c.request({"type": "subscribe", "subscriptions": ["nope"]})
        c.request({"type": "request_data", "data_type": "system_health"})
        c.request({"type": "request_data", "data_type": "weather"})
        c.request({"type": "ping"})
        for sub, data in (
            ("agents", {"agent_id": "a"}),
            ("tasks", {"task_id": "t"}),
            ("coordination", {"q": 1}),
            ("system", {"cpu": 3}),
            ("alerts", {"alerts": [{"level": "critical"}]}),
        ):
            httpx.post(url, params={"subscription": sub}, json=data).raise_for_status()
        for _ in range(5):
            c.recv()
        frames = list(c.frames)
    kinds = {f["type"] for f in frames}
    assert {
        "connection_established",
        "subscription_updated",
        "error",
        "data_response",
        "data_error",
        "agent_update",
        "task_update",
        "critical_alert",
    } <= kinds
    checked = 0
    for frame in frames + [ex for name in SERVER for ex in DEFS[name]["examples"]]:
        branch = _reference_branch(reference, frame["type"])
        if branch is not None:
            jsonschema.Draft202012Validator(branch).validate(frame)
            checked += 1
    assert checked >= len(frames)
