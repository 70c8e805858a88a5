"""The `apiref` page generators: protocol, AsyncAPI, TypeScript, REST, configuration, command
line, metrics and Python API."""

from __future__ import annotations

import copy
import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from docs_automation.apiref import (
    asyncapi,
    commandline,
    configuration,
    metrics,
    protocol,
    pythonapi,
    rest,
    typescript,
)
from docs_automation.apiref.markdown import ILLUSTRATIVE
from docs_automation.apiref.node import run_node
from docs_automation.apiref.schema import CLIENT, SERVER, frames, load_schema
from docs_automation.apiref.sequences import sequences
from docs_automation.errors import BlockError, GenerateError
from docs_automation.examples.runners import rewrite, run_script
from reference_server import Settings, create_app
from reference_server.__main__ import build_parser
from reference_server.metrics import Metrics
from reference_server.session import CLOSE_CODES
from tests.procs import ROOT, ServerProcess

SCHEMA = load_schema(ROOT)


def _fences(markdown: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", markdown, flags=re.M | re.S)


@pytest.fixture(scope="module")
def protocol_page() -> str:
    return protocol.page(ROOT, SCHEMA)


@pytest.mark.unit
def test_every_frame_is_labelled_with_its_direction(protocol_page: str) -> None:
    defs = SCHEMA["definitions"]
    for group, label in (("ClientFrame", CLIENT), ("ServerFrame", SERVER)):
        for ref in defs[group]["oneOf"]:
            name = ref["$ref"].rsplit("/", 1)[-1]
            kind = defs[name]["properties"]["type"].get("const", "updates")
            section = protocol_page.split(f"\n### {kind}\n", 1)[1].split("\n### ", 1)[0]
            assert f"**{label}** · TypeScript type `{name}`" in section
            for field in defs[name]["properties"]:
                assert f"| `{field}` |" in section, (name, field)


@pytest.mark.unit
def test_every_json_example_on_the_page_validates_against_the_schema(protocol_page: str) -> None:
    examples = _fences(protocol_page, "json")
    assert len(examples) >= len(frames(SCHEMA))
    validator = Draft7Validator(SCHEMA)
    for body in examples:
        assert not list(validator.iter_errors(json.loads(body))), body


@pytest.mark.unit
def test_every_type_a_field_links_to_is_defined_under_common_types(protocol_page: str) -> None:
    common = protocol_page.split("\n## Common types\n", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\[`(\w+)`\]\(#common-types\)", protocol_page))
    assert "Positions" in linked
    for name in linked:
        assert f"| `{name}` |" in common, f"{name} is linked to Common types, not defined there"


@pytest.mark.unit
def test_page_lists_every_error_code_and_close_code(protocol_page: str) -> None:
    for error_code in SCHEMA["definitions"]["ErrorCode"]["enum"]:
        assert f"| `{error_code}` |" in protocol_page
    for reason, number in CLOSE_CODES.items():
        assert f"| `{reason}` | {number} |" in protocol_page
    assert "`Rate limit exceeded`" in protocol_page  # read from the session's source


@pytest.mark.unit
def test_error_messages_are_read_from_the_calls_in_the_source(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        textwrap.dedent(
            """
            def f(kind, cap):
                raise FrameError("bad_kind", f"Bad kind: {kind}")
            def g(self, cap):
                return self._error("too_many", "At most " + str(cap), 0.0, None)
            """
        )
    )
    assert protocol.error_messages(tmp_path) == {
        "bad_kind": ["Bad kind: …"],
        "too_many": ["At most …"],
    }


@pytest.mark.unit
def test_a_disconnect_reason_without_a_close_code_stops_the_generator() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["definitions"]["DisconnectReason"]["enum"].append("gone_fishing")
    with pytest.raises(GenerateError, match="CLOSE_CODES"):
        protocol.page(ROOT, schema)


@pytest.mark.unit
def test_an_invalid_example_in_the_schema_stops_the_generator() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["definitions"]["Pong"]["examples"] = [{"type": "pong"}]
    with pytest.raises(GenerateError, match="example of Pong is invalid"):
        frames(schema)


@pytest.mark.unit
def test_sequence_diagrams_quote_the_settings_and_close_codes() -> None:
    settings = Settings(
        rate_tokens_per_sec=7, send_queue_max_messages=33, send_queue_max_bytes=123_456
    )
    diagrams = sequences(SCHEMA, settings, CLOSE_CODES)
    assert list(diagrams) == [
        "Connect",
        "Subscribe",
        "Resume",
        "Rate limit",
        "Backpressure",
        "Auth rejection",
    ]
    assert "faster than 7 frames/s" in diagrams["Rate limit"]
    assert "at most 33 frames and 123,456 bytes" in diagrams["Backpressure"]
    assert f"close {CLOSE_CODES['unauthorized']}" in diagrams["Auth rejection"]


@pytest.mark.docs
def test_mermaid_parses_every_sequence_diagram(protocol_page: str) -> None:
    script = """
    const input = require("fs").readFileSync(0, "utf8");
    import("mermaid/dist/mermaid.core.mjs").then(async ({ default: mermaid }) => {
      for (const source of JSON.parse(input)) await mermaid.parse(source);
      process.stdout.write("ok");
    });
    """
    blocks = _fences(protocol_page, "mermaid")
    assert len(blocks) == 6
    assert run_node(ROOT, script, stdin=json.dumps(blocks)) == "ok"
    with pytest.raises(GenerateError, match="Parse error"):
        run_node(ROOT, script, stdin=json.dumps(["sequenceDiagram\n  C->>S hi\n"]))


@pytest.mark.docs
def test_committed_asyncapi_document_passes_the_parser_and_refs_the_schema() -> None:
    text = (ROOT / asyncapi.DOCUMENT).read_text(encoding="utf-8")
    asyncapi.validate(ROOT, text)
    doc = asyncapi.document(SCHEMA)
    actions = {name: op["action"] for name, op in doc["operations"].items()}
    for frame in frames(SCHEMA):
        expected = "receive" if frame.direction == CLIENT else "send"
        assert actions[expected + frame.name] == expected
        message = doc["channels"]["dashboard"]["messages"][frame.name]
        assert message["payload"] == {
            "$ref": f"../../schemas/ws_messages.schema.json#/definitions/{frame.name}"
        }


@pytest.mark.docs
def test_the_parser_refuses_a_broken_asyncapi_document() -> None:
    text = (ROOT / asyncapi.DOCUMENT).read_text(encoding="utf-8")
    with pytest.raises(GenerateError, match="definitions/Nope"):
        asyncapi.validate(ROOT, text.replace("definitions/Ping", "definitions/Nope", 1))


@pytest.mark.docs
def test_typescript_types_are_a_union_of_every_frame() -> None:
    text = typescript.render(ROOT)[typescript.TYPES]
    client = re.search(r"export type ClientFrame = ([^;]+);", text)
    server = re.search(r"export type ServerFrame =([^;]+);", text)
    assert client and server
    members = {m.strip() for m in (client[1] + "|" + server[1]).split("|") if m.strip()}
    assert members == {f.name for f in frames(SCHEMA)}
    assert 'type: "ping";' in text  # literal discriminants, not `string`


def _run_ts(source: str, server: ServerProcess | None = None) -> str:
    if server is not None:
        source = rewrite(source, {8000: server.port})
    return run_script("ts", source, ROOT, timeout=60)


@pytest.mark.integration
def test_pwa_example_type_checks_and_talks_to_a_live_server(server: ServerProcess) -> None:
    source = (ROOT / "docs" / "examples" / "pwa-client.ts").read_text(encoding="utf-8")
    assert "exit 0" in _run_ts(source, server)


@pytest.mark.docs
def test_tsc_refuses_a_frame_the_union_does_not_allow() -> None:
    bad = 'import type { ClientFrame } from "./ws_messages";\n'
    bad += 'const f: ClientFrame = { type: "subscribe", subscriptions: "agents" };\n'
    bad += "console.log(f);\n"
    with pytest.raises(BlockError, match="tsc exited"):
        _run_ts(bad)


@pytest.mark.unit
def test_rest_page_covers_every_operation_and_parameter() -> None:
    spec: dict[str, Any] = create_app(Settings()).openapi()
    page = rest.render_openapi(spec, "http://127.0.0.1:8000")
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert f"## {method.upper()} {path}\n" in page
            for param in op.get("parameters", []):
                assert f"| `{param['name']}` | {param['in']} |" in page
            for status in op["responses"]:
                assert f"- **{status}**" in page


@pytest.mark.unit
def test_rest_page_shows_examples_the_openapi_document_carries() -> None:
    spec: dict[str, Any] = {
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {
                "post": {
                    "summary": "s",
                    "requestBody": {"content": {"application/json": {"example": {"alerts": [1]}}}},
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"example": {"seq": 9}}},
                        }
                    },
                }
            }
        },
    }
    page = rest.render_openapi(spec, "http://h")
    assert '"seq": 9' in page
    assert (
        "curl -fsS -X POST -H 'Content-Type: application/json' -d '{\"alerts\": [1]}' 'http://h/x'"
        in page
    )
    assert f"{ILLUSTRATIVE}\n```bash" not in page  # every value is known: the docs tests run it


@pytest.mark.unit
@pytest.mark.parametrize(
    ("schema", "url", "runs"),
    [
        ({"type": "string", "examples": ["agent_status"]}, "http://h/data/agent_status", True),
        ({"type": "string"}, "http://h/data/<kind>", False),
    ],
)
def test_rest_page_fills_a_path_parameter_with_its_example_and_runs_it_only_then(
    schema: dict[str, Any], url: str, runs: bool
) -> None:
    kind = {"name": "kind", "in": "path", "required": True, "schema": schema}
    operation = {"summary": "s", "parameters": [kind], "responses": {"200": {"description": "ok"}}}
    spec = {"info": {"title": "t", "version": "1"}, "paths": {"/data/{kind}": {"get": operation}}}
    page = rest.render_openapi(spec, "http://h")
    assert f"curl -fsS '{url}'" in page
    assert (f"{ILLUSTRATIVE}\n```bash" not in page) is runs


@pytest.mark.unit
def test_rest_page_shows_a_secured_call_with_its_header_and_does_not_run_it() -> None:
    spec: dict[str, Any] = {
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/admin": {
                "get": {
                    "summary": "s",
                    "security": [{"adminToken": []}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {
            "schemas": {
                "Entry": {
                    "description": "One entry.",
                    "properties": {"n": {"type": "integer", "description": "How many."}},
                    "required": ["n"],
                }
            }
        },
    }
    page = rest.render_openapi(spec, "http://h")
    assert (
        f"{ILLUSTRATIVE}\n```bash\n"
        "curl -fsS -H 'Authorization: Bearer <admin-token>' 'http://h/admin'" in page
    )
    assert "One entry." in page and "| `n` | `integer` | yes | How many. |" in page


@pytest.mark.unit
def test_configuration_page_has_every_setting_with_its_default() -> None:
    page = configuration.configuration()
    for name, default in vars(Settings()).items():
        row = next(line for line in page.splitlines() if f"`{Settings.env_name(name)}`" in line)
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        shown = ",".join(default) if isinstance(default, tuple) else shown
        assert f"`{shown}`" in row or (default in ("", ()) and "(empty)" in row), row


@pytest.mark.unit
def test_cli_page_has_every_option_of_both_programs() -> None:
    page = commandline.cli()
    for action in build_parser()._actions:
        for option in set(action.option_strings) - {"-h", "--help"}:
            assert f"`{option}`" in page
    for command in ("apiref", "diagrams", "staleness"):
        assert f"## `python -m docs_automation {command}`" in page or (
            f"### `python -m docs_automation {command}`" in page
        )


@pytest.mark.unit
def test_metrics_page_has_every_metric_of_the_registry() -> None:
    page = metrics.metrics()
    for family in Metrics().registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        assert f"| `{family.name}{suffix}` | {family.type} |" in page


@pytest.mark.unit
def test_every_public_name_has_a_docstring() -> None:
    missing = pythonapi.undocumented(pythonapi.public_names(ROOT))
    assert not missing, f"public names without a docstring: {', '.join(missing)}"


@pytest.mark.unit
def test_python_api_page_has_an_identifier_for_every_public_name() -> None:
    page = (ROOT / pythonapi.PAGE).read_text(encoding="utf-8")
    for name in pythonapi.public_names(ROOT):
        assert f"::: {name.module}.{name.name}\n" in page, name.target


@pytest.mark.unit
def test_an_undocumented_public_name_is_caught(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A package."""\n__all__ = ["good", "bad", "LIMIT"]\n'
        'def good(x: int) -> int:\n    """Documented."""\n    return x\n'
        "def bad(y: str = 'a') -> str:\n    return y\n"
        "LIMIT = 3\n"
    )
    names = pythonapi.public_names(tmp_path, ["pkg"])
    assert pythonapi.undocumented(names) == ["pkg.LIMIT", "pkg.bad"]
    signatures = {n.name: n.signature for n in names}
    assert signatures["bad"] == "bad(y: str = 'a') -> str"
    shutil.rmtree(package)
