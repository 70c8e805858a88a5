"""The REST reference page (`docs/reference/rest.md`), from the app's own OpenAPI document.

`create_app().openapi()` is what the running server serves at `/openapi.json`, so the page
cannot list an endpoint, parameter or response the server does not have. It leaves out the
WebSocket route (FastAPI's OpenAPI has no WebSocket support); the protocol page covers it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reference_server import Settings, create_app

from .generator import Rendered
from .markdown import banner, code, fence, table

__all__ = ["PAGE", "render", "render_openapi"]

PAGE = "docs/reference/rest.md"
"""Where the page goes, relative to the repository root."""


def _schema_words(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_schema_words(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(code(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + _schema_words(schema.get("items", {}))
    return code(kind) if kind else "any"


def _example_value(param: Mapping[str, Any]) -> str:
    schema = param.get("schema", {})
    for source in (param, schema):
        if "example" in source:
            return str(source["example"])
        if source.get("examples"):
            examples = source["examples"]
            first = examples[0] if isinstance(examples, list) else next(iter(examples.values()))
            return str(first.get("value", first) if isinstance(first, Mapping) else first)
    if schema.get("enum"):
        return str(schema["enum"][0])
    return f"<{param['name']}>"


def _examples(content: Mapping[str, Any]) -> list[Any]:
    """Examples a media type object carries, in either OpenAPI spelling."""
    if "example" in content:
        return [content["example"]]
    return [e.get("value") for e in content.get("examples", {}).values()]


def _content(content: Mapping[str, Any]) -> str:
    out = []
    for media, body in content.items():
        schema = body.get("schema", {})
        out.append(f"`{media}`: {_schema_words(schema) if schema else 'any'}")
        for example in _examples(body):
            # Inline, not fenced: a REST payload is no protocol frame for the docs harness
            # to validate, and the page's curl blocks already run these calls for real.
            text = example if isinstance(example, str) else json.dumps(example)
            out.append(f"; example: `{text}`")
        out.append("\n")
    return "".join(out)


def _curl(base: str, method: str, path: str, op: Mapping[str, Any]) -> str:
    query = [p for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")]
    # A path parameter takes its example value, like a required query parameter.
    in_path = [p for p in op.get("parameters", []) if p["in"] == "path"]
    for param in in_path:
        path = path.replace("{" + param["name"] + "}", _example_value(param))
    url = (
        base
        + path
        + ("?" + "&".join(f"{p['name']}={_example_value(p)}" for p in query) if query else "")
    )
    parts = ["curl -fsS"]
    if method != "get":
        parts.append(f"-X {method.upper()}")
    # A route behind a Bearer token (the admin routes) answers the docs tests' server, which
    # has none, with 403: its call is shown with the header, and run by the operators' how-to.
    secured = bool(op.get("security"))
    if secured:
        parts.append("-H 'Authorization: Bearer <admin-token>'")
    body = op.get("requestBody", {}).get("content", {})
    complete = not secured and all(
        not _example_value(p).startswith("<") for p in (*query, *in_path)
    )
    for media, spec in body.items():
        examples = _examples(spec)
        parts.append(f"-H 'Content-Type: {media}'")
        if examples:
            parts.append(f"-d '{json.dumps(examples[0])}'")
        complete = complete and bool(examples)
    parts.append(f"'{url}'")
    # A call with every value known runs as-is in the docs tests (which point it at a live
    # server); one with placeholders can only be shown.
    return fence("bash", " ".join(parts), illustrative=not complete)


def _operation(base: str, method: str, path: str, op: Mapping[str, Any]) -> str:
    out = [f"## {method.upper()} {path}\n\n{op.get('summary', '')}\n"]
    if op.get("description"):
        out.append(f"\n{op['description']}\n")
    params = op.get("parameters", [])
    if params:
        rows = [
            (
                code(p["name"]),
                p["in"],
                _schema_words(p.get("schema", {})),
                "yes" if p.get("required") else "no",
                p.get("description", ""),
            )
            for p in params
        ]
        out.append(
            "\n**Parameters**\n\n" + table(("Name", "In", "Type", "Required", "Meaning"), rows)
        )
    if "requestBody" in op:
        required = "required" if op["requestBody"].get("required") else "optional"
        out.append(f"\n**Request body** ({required})\n\n" + _content(op["requestBody"]["content"]))
    out.append("\n**Responses**\n\n")
    for status, response in op.get("responses", {}).items():
        out.append(f"- **{status}** {response.get('description', '').rstrip('.')}")
        content = response.get("content")
        out.append(". Body: " + _content(content) if content else "\n")
    out.append("\n**Example**\n\n" + _curl(base, method, path, op))
    return "".join(out)


def render_openapi(spec: Mapping[str, Any], base: str) -> str:
    """The REST page for the OpenAPI document `spec`, with examples against `base`."""
    info = spec["info"]
    out = [
        banner("apiref", "reference_server.create_app().openapi()"),
        f"\n# REST API\n\n{info['title']}, version {code(info['version'])}. "
        f"{info.get('description', '')}\n\n"
        "The running server also serves this as OpenAPI at `/openapi.json` and interactively "
        "at `/docs`.\n\n",
    ]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out.append(_operation(base, method, path, op) + "\n")
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        out.append("## Schemas\n\n")
        for name, schema in schemas.items():
            required = set(schema.get("required", ()))
            rows = [
                (
                    code(field),
                    _schema_words(prop),
                    "yes" if field in required else "no",
                    prop.get("description", ""),
                )
                for field, prop in schema.get("properties", {}).items()
            ]
            summary = f"{schema['description']}\n\n" if schema.get("description") else ""
            out.append(
                f"### {name}\n\n{summary}"
                + table(("Field", "Type", "Required", "Meaning"), rows)
                + "\n"
            )
    return "".join(out).rstrip() + "\n"


def render(root: Path) -> Rendered:
    """The REST page, from the OpenAPI document of an app with default settings."""
    settings = Settings()
    base = f"http://{settings.host}:{settings.port}"
    return {PAGE: render_openapi(create_app(settings).openapi(), base)}
