"""The client package's API page (TypeDoc) documents exactly what the package exports, and
the package compiles the generated frame types, not a copy."""

from __future__ import annotations

import re

import pytest

from docs_automation.apiref import clientapi, typescript
from tests.procs import ROOT

INDEX = ROOT / "clients" / "typescript" / "src" / "index.ts"


def exported_names() -> set[str]:
    """Names `src/index.ts` exports by name, read with a regex of this test's own."""
    source = INDEX.read_text(encoding="utf-8")
    names: set[str] = set()
    for block in re.findall(r"export (?:type )?\{([^}]*)\}", source):
        names |= {part.strip() for part in block.split(",") if part.strip()}
    return names


@pytest.mark.docs
def test_client_api_page_has_a_heading_for_every_export() -> None:
    page = clientapi.render(ROOT)[clientapi.CLIENT_API]
    headings = set(re.findall(r"^#{2,4} (\w+)(?:\(\))?$", page, flags=re.M))
    names = exported_names()
    assert {"HiveClient", "ClientOptions", "backoffDelay", "TokenBucket"} <= names
    assert names - headings == set()
    assert page.startswith("<!-- Generated from clients/typescript/src")


@pytest.mark.docs
def test_client_package_compiles_the_generated_types() -> None:
    rendered = typescript.render(ROOT)
    assert rendered[typescript.CLIENT_TYPES] == rendered[typescript.TYPES]
    committed = (ROOT / typescript.CLIENT_TYPES).read_text(encoding="utf-8")
    assert committed == rendered[typescript.TYPES], "run python -m docs_automation apiref"
