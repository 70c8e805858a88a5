"""Parsing pages into sections, units and links (docs_automation.consolidate.corpus)."""

from __future__ import annotations

import pytest

from docs_automation.consolidate.corpus import (
    code_key,
    fence,
    link_path,
    normalize,
    parse_page,
    unit_sources,
)

pytestmark = pytest.mark.unit

PAGE = """---
title: Broker notes
---
# Broker notes

The broker keeps **every** update for [resume](../guides/resume.md#how).

- Redis streams keep history
  - capped with `MAXLEN`
- pub/sub does not

| setting | default |
| --- | --- |
| history_max_messages | 1000 |

```python
print("[not a link](nowhere.md)")
```

<div class="note">An HTML note about ports</div>

## Failure modes

✅ Done

> A quoted warning about restarts.
"""


def test_units_cover_paragraphs_items_rows_code_html_and_front_matter() -> None:
    page = parse_page("docs/broker.md", PAGE)
    kinds = [unit.kind for unit in page.units]
    assert kinds == [
        "front_matter", "paragraph", "item", "item", "item", "row", "row", "code", "html",
        "paragraph", "paragraph",
    ]  # fmt: skip


def test_unit_keys_ignore_markup_and_link_targets_but_keep_case() -> None:
    page = parse_page("docs/broker.md", PAGE)
    assert page.units[1].key == "The broker keeps every update for resume."
    assert normalize("The **Broker** keeps [every](a.md) update!") == normalize(
        "The Broker keeps [every](elsewhere/b.md) update!"
    )
    # A reader sees `ReDoc` and `Redoc` apart, and in code `DEBUG` is not `debug`.
    assert normalize("Set `DEBUG`.") != normalize("Set `debug`.")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("| Windows | ✅ |", "| Windows | ❌ |"),
        ("Requires Python >= 3.11.", "Requires Python < 3.11."),
        ("Retries: 3", "Retries: 3!"),
    ],
)
def test_symbols_are_content_so_different_facts_get_different_keys(first: str, second: str) -> None:
    def keys(line: str) -> set[str]:
        text = f"| OS | Supported |\n| --- | --- |\n{line}\n" if line.startswith("|") else line
        return {unit.key for unit in parse_page("p.md", text).units}

    assert keys(first) != keys(second)


def test_code_keys_are_exact_so_indentation_keeps_yaml_blocks_apart() -> None:
    flat = parse_page("a.md", "```yaml\nretry:\n  cap: 60\nlimit: 5\n```\n")
    nested = parse_page("b.md", "```yaml\nretry:\n  cap: 60\n  limit: 5\n```\n")
    assert flat.units[0].key != nested.units[0].key


def test_every_unit_is_substantive_however_short() -> None:
    page = parse_page("p.md", "✅ Done\n\n```\nx\n```\n\n- Azure\n")
    assert [(u.kind, u.substantive) for u in page.units] == [
        ("paragraph", True),
        ("code", True),
        ("item", True),
    ]
    assert not parse_page("p.md", "✅ Done\n", min_words=3).units[0].substantive


def test_every_unit_raw_parses_back_to_the_same_key() -> None:
    page = parse_page("docs/broker.md", PAGE)
    for unit, source in zip(page.units, unit_sources(page), strict=True):
        again = parse_page("x.md", source)
        assert unit.key in {u.key for u in again.units}, source


def test_table_rows_carry_their_header_so_they_stay_a_table() -> None:
    page = parse_page("docs/broker.md", PAGE)
    assert unit_sources(page)[6].splitlines() == [
        "| setting | default |",
        "| --- | --- |",
        "| history_max_messages | 1000 |",
    ]


def test_nested_list_item_raw_is_dedented_with_its_marker() -> None:
    page = parse_page("docs/broker.md", PAGE)
    assert unit_sources(page)[3] == "- capped with `MAXLEN`"


def test_sections_follow_headings_and_the_title_is_the_first_h1() -> None:
    page = parse_page("docs/broker.md", PAGE)
    assert page.title == "Broker notes"
    assert [s.heading for s in page.sections] == ["", "Broker notes", "Failure modes"]
    assert page.sections[page.units[-1].section].heading == "Failure modes"


def test_relative_links_resolve_from_the_page_folder_and_code_is_skipped() -> None:
    page = parse_page("docs/broker.md", PAGE)
    assert [(link.href, link.target) for link in page.links] == [
        ("../guides/resume.md#how", "guides/resume.md")
    ]


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("https://example.org/x.md", None),
        ("mailto:team@example.org", None),
        ("#section", None),
        ("/abs/path.md", None),
        ("sub/page.md?plain=1#top", "docs/sub/page.md"),
        ("../../outside.md", "../outside.md"),
        ("<with%20space.md>", "docs/with space.md"),
    ],
)
def test_link_path_keeps_only_tree_links(href: str, expected: str | None) -> None:
    assert link_path("docs/page.md", href) == expected


def test_a_fence_left_open_at_the_end_gets_a_closer() -> None:
    assert parse_page("p.md", "# T\n\n```bash\necho hi\n").closer == "\n```"
    assert parse_page("p.md", "# T\n\n```bash\necho hi\n```\n").closer == ""
    assert parse_page("p.md", "<!-- draft\nnotes\n").closer == "\n-->"


def test_fence_is_longer_than_any_backtick_run_inside() -> None:
    text = fence("a ``` b\n", "md")
    assert text.startswith("````md\n") and text.endswith("\n````")
    assert parse_page("p.md", text).units[0].key == code_key("a ``` b\n")


def test_non_utf8_text_decoded_with_surrogates_still_parses() -> None:
    text = b"# T \xaf\n\nA paragraph about ports\n".decode("utf-8", "surrogateescape")
    page = parse_page("p.md", text)
    assert page.units[0].key == "A paragraph about ports"


def test_reference_definitions_are_units_keyed_by_destination() -> None:
    page = parse_page("docs/p.md", "# T\n\nSee [x][a].\n\n[a]: https://example.org\n[b]: ../x.md\n")
    refs = [u for u in page.units if u.kind == "reference"]
    assert [(u.key, u.substantive) for u in refs] == [
        ("reference: https://example.org", True),
        ("reference: ../x.md", False),  # a tree path: checked as a link, rewritten when moved
    ]
    assert page.units[0].key == "See x."  # the label is not part of the fact
    assert [link.target for link in page.links] == ["x.md"]


def test_html_with_a_marked_section_the_stdlib_parser_rejects_still_parses() -> None:
    # CPython issue 81928, met by MkDocs (#3929) in generated C++ API docs.
    text = '<div>\nstd::enable_if_t<![ns::is_x](x.md)< U >\n<a href="y.md">y</a>\n</div>\n'
    page = parse_page("docs/p.md", text)
    assert [link.target for link in page.links] == ["docs/y.md"]
    assert [unit.kind for unit in page.units] == ["html"]


def test_text_without_inline_markup_gets_the_key_the_inline_parser_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re

    from docs_automation.consolidate import corpus

    text = PAGE + "\nTwo spaces  \nmake a hard break; tabs\tand ✅ stay.\n\n"
    text += "| a | b |\n|---|---|\n| c | d |\n"
    fast = [unit.key for unit in parse_page("docs/broker.md", text).units]
    monkeypatch.setattr(corpus, "_MARKUP_RE", re.compile(r"[\s\S]"))  # parse every text
    assert [unit.key for unit in parse_page("docs/broker.md", text).units] == fast


def test_anchors_are_heading_slugs_attr_list_ids_and_html_ids() -> None:
    text = (
        "# Retry guide\n\n## Setup\n\n## Setup\n\n## Limits {#caps}\n\n"
        'The cap.\n{: #cap-note }\n\n<a id="raw"></a>\n\nSee <span id="inline">here</span>.\n'
    )
    assert parse_page("p.md", text).anchors == {
        "retry-guide", "setup", "setup_1", "caps", "cap-note", "raw", "inline",
    }  # fmt: skip
