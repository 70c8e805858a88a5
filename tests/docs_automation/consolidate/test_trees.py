"""A real-world corpus: one small tree per fault class, each run through the real command.

Each tree is the kind of Markdown that other tools' public bug reports are about (named per
tree). A test builds it, runs `consolidate --plan --apply` in a temporary folder and checks
the floors of issue 12: exit 0 for valid input (or the documented refusal, exit 2 naming the
path, for invalid input), SRC byte for byte unchanged, and then, with the independent audit
(`consolidate.audit`) and with direct checks on the files: no block lost, no link or anchor
that resolved newly broken, a redirect for every page that left.

Trees the consolidator gets wrong today are marked `xfail(strict=True)` with the item of
issue 12 that fixes them: when a fix lands the test passes, strict xfail fails, and the
mark must go.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from docs_automation.cli import main
from docs_automation.consolidate.audit import audit_trees
from tests.docs_automation.consolidate.test_files import as_unprivileged
from tests.procs import ROOT

Files = dict[str, str | bytes]


@dataclass(frozen=True)
class Case:
    """One tree and what must hold after consolidating it.

    Attributes:
        files: the tree, path to text (UTF-8) or bytes.
        moved: pages the plan must merge or delete (so the case exercises moving them).
        present: (DEST path, text) pairs that must be in DEST, read as UTF-8.
        args: extra command-line arguments.
        refused: for invalid input, a text the exit-2 message must contain.
        prepare: changes to SRC that literal files cannot make (symbolic links, modes).
        source: the public bug report (or issue 12 item) the tree comes from.
        xfail: why the consolidator fails it today (issue 12 item), or "".
    """

    files: Files
    moved: tuple[str, ...] = ()
    present: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    refused: str = ""
    prepare: Callable[[Path], None] | None = None
    source: str = ""
    xfail: str = ""
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


def family(topic: str, body: str, guide_extra: str = "", **extra: str | bytes) -> Files:
    """A live guide and an archived report on one topic: the report merges into the guide."""
    title = topic.capitalize()
    files: Files = {
        f"docs/{topic}-guide.md": f"# {title} guide\n\nThe {topic} service keeps its state "
        f"on local disk.\n\nRestart the {topic} service after changing its settings.\n"
        + guide_extra,
        f"archive/{topic}_report.md": f"# {title} report\n\n{body}",
    }
    files.update(extra)
    return files


GUIDE = "docs/{}-guide.md"
REPORT = "archive/{}_report.md"


def _symlinks(src: Path) -> None:
    (src / "docs/latest.md").symlink_to("gateway-guide.md")
    (src / "current").symlink_to("docs", target_is_directory=True)


def _lone_cr(src: Path) -> None:
    path = src / REPORT.format("relay")
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))


CASES: dict[str, Case] = {
    # ---- issue 12 item 1: links and anchors from the parser --------------------------------
    "link-text-over-two-lines": Case(
        family(
            "gateway",
            "See the [gateway\nnotes](limits.md) before raising the cap.\n",
            **{"archive/limits.md": "# Limits\n\nThe cap is 400 requests a second.\n"},
        ),
        moved=(REPORT.format("gateway"),),
        present=((GUIDE.format("gateway"), "../archive/limits.md"),),
        source="issue 12 item 1; prettier/prettier#15713 (line breaks between links)",
    ),
    "footnote-in-a-moved-page": Case(
        family("ledger", "Latency was 40 ms[^1].\n\n[^1]: Measured on the staging cluster.\n"),
        moved=(REPORT.format("ledger"),),
        present=((GUIDE.format("ledger"), "[^1]: Measured on the staging cluster."),),
        source="issue 12 item 1",
    ),
    "html-img-and-a-in-a-moved-page": Case(
        family(
            "curve",
            '<p align="center">\n<img src="img/curve.png" alt="Retry curve">\n</p>\n\n'
            'The raw numbers are in <a href="data/soak.csv">the soak data</a>.\n',
            **{"archive/img/curve.png": b"\x89PNG\r\n", "archive/data/soak.csv": "t,ok\n1,97\n"},
        ),
        moved=(REPORT.format("curve"),),
        present=((GUIDE.format("curve"), 'src="../archive/img/curve.png"'),),
        source="issue 12 item 1; mkdocs/mkdocs#1908 (images relative to a moved page)",
    ),
    "reference-style-links": Case(
        family(
            "pager",
            "Read [the runbook][rb] and [the limits].\n\n[rb]: ../docs/runbook.md\n"
            '[the limits]: limits.md "Current limits"\n',
            **{
                "archive/limits.md": "# Limits\n\nThe cap is 400 requests a second.\n",
                "docs/runbook.md": "# Runbook\n\nPage the on-call engineer first.\n",
            },
        ),
        moved=(REPORT.format("pager"),),
        source="prettier/prettier#6212 (reference-style links broken by reformatting)",
    ),
    "angle-brackets-encoded-spaces-titles-and-queries": Case(
        family(
            "upload",
            "The [old notes](<old notes.md>) and [the form](old%20notes.md?print=1#limits) "
            'and [the title](old%20notes.md "Old notes").\n',
            **{"archive/old notes.md": "# Old notes\n\n## Limits\n\nUploads stop at 2 GB.\n"},
        ),
        moved=(REPORT.format("upload"),),
        source="mkdocs/mkdocs#1670, zensical/zensical#598 (%20), markdown-it/markdown-it#567 "
        "(<dest with spaces>), lychee fragments with queries",
    ),
    "case-sensitive-paths": Case(
        family(
            "mirror",
            "The [mirror list](Mirrors.md) and [the lower-case one](mirrors.md).\n",
            **{
                "archive/Mirrors.md": "# Mirrors\n\nEurope and Asia mirrors.\n",
                "archive/mirrors.md": "# Mirrors (lower case)\n\nAmerica mirrors only.\n",
            },
        ),
        moved=(REPORT.format("mirror"),),
        source="facebook/docusaurus#9057 (case-insensitive broken-link check)",
    ),
    # ---- item 2: identity that keeps facts apart -------------------------------------------
    "code-differing-only-in-indentation": Case(
        family(
            "deploy",
            "Flat keys:\n\n```yaml\nreplicas:\nport: 80\n```\n",
            guide_extra="\nNested keys:\n\n```yaml\nreplicas:\n  port: 80\n```\n",
        ),
        moved=(REPORT.format("deploy"),),
        present=((GUIDE.format("deploy"), "replicas:\nport: 80\n"),),
        source="issue 12 item 2",
    ),
    "symbols-in-a-table": Case(
        {
            "docs/support.md": "# Support\n\n| OS | Supported |\n| --- | --- |\n| Windows | ✅ |\n",
            "archive/support-old.md": "# Support\n\n| OS | Supported |\n| --- | --- |\n"
            "| Windows | ❌ |\n",
        },
        present=(("docs/support.md", "✅"),),
        source="issue 12 item 2",
    ),
    "comparison-operators": Case(
        {
            "docs/install.md": "# Install\n\nRequires Python >= 3.11.\n",
            "archive/install-old.md": "# Install\n\nRequires Python < 3.11.\n",
        },
        source="issue 12 item 2",
    ),
    "short-unique-list-item": Case(
        {
            "docs/clouds.md": "# Clouds\n\nWe deploy the hive on these clouds today:\n\n- AWS\n"
            "- Google Cloud\n",
            "archive/clouds-copy.md": "# Clouds\n\nWe deploy the hive on these clouds today:\n\n"
            "- AWS\n- Google Cloud\n- Azure\n",
        },
        source="issue 12 item 2",
    ),
    # ---- item 3: containers stay whole -----------------------------------------------------
    "admonition": Case(
        family(
            "backoff",
            '!!! warning "Keep the cap above one minute"\n\n'
            "    Shorter caps make 400 clients retry in lockstep.\n",
        ),
        moved=(REPORT.format("backoff"),),
        present=((GUIDE.format("backoff"), '!!! warning "Keep the cap above one minute"'),),
        source="issue 12 item 3",
    ),
    "details": Case(
        family(
            "soak",
            "<details>\n<summary>Soak numbers</summary>\n\nNinety-seven of 100 jobs "
            "recovered.\n\n</details>\n\nThe soak ran for six hours on two workers.\n",
        ),
        moved=(REPORT.format("soak"),),
        present=((GUIDE.format("soak"), "</details>"),),
        source="issue 12 item 3",
    ),
    "content-tabs": Case(
        family(
            "install",
            '=== "pip"\n\n    ```bash\n    pip install lantern\n    ```\n\n'
            '=== "uv"\n\n    ```bash\n    uv add lantern\n    ```\n',
        ),
        moved=(REPORT.format("install"),),
        source="issue 12 item 3 (pymdownx.tabbed)",
    ),
    "list-item-with-nested-blocks": Case(
        family(
            "worker",
            "1. Install the worker:\n\n    ```bash\n    lantern worker --concurrency 4\n"
            "    ```\n\n2. Start it and watch the log.\n\n    - Errors go to stderr.\n",
        ),
        moved=(REPORT.format("worker"),),
        source="issue 12 item 3",
    ),
    "multi-paragraph-footnote": Case(
        family(
            "quota",
            "Quotas reset daily[^reset].\n\n[^reset]: At midnight UTC.\n\n"
            "    Tenants in Asia asked to move it.\n",
        ),
        moved=(REPORT.format("quota"),),
        source="issue 12 item 3",
    ),
    # ---- kinds from other tools' bug reports -----------------------------------------------
    "setext-headings": Case(
        family("cache", "Cache sizing\n------------\n\nThe cache holds 512 entries per node.\n"),
        moved=(REPORT.format("cache"),),
        source="prettier/prettier#17807, prettier/prettier#19148 (setext headings broken)",
    ),
    "html-comments": Case(
        family(
            "tracing",
            "<!-- markdownlint-disable MD033 -->\nTraces are sampled at 10 %.\n\n"
            "<!--\nan unfinished note\n-->\n\nSpans older than a week are dropped.\n",
        ),
        moved=(REPORT.format("tracing"),),
        source="DavidAnson/markdownlint#37, #1267 (HTML comments beside content)",
    ),
    "raw-html-table": Case(
        family(
            "region",
            "<table>\n<tr><td>eu-west</td><td>3 zones</td></tr>\n"
            "<tr><td>ap-south</td><td>2 zones</td></tr>\n</table>\n",
        ),
        moved=(REPORT.format("region"),),
        source="raw HTML blocks (CommonMark §4.6)",
    ),
    "indented-code-and-tilde-fences": Case(
        family(
            "shell",
            "Run this:\n\n    make soak\n\n~~~~text\n```\nnested fence text\n```\n~~~~\n",
        ),
        moved=(REPORT.format("shell"),),
        source="fences containing fences (markdown-it, Prettier fence handling)",
    ),
    # Fences the two engines read differently stay on their page, as written (see the how-to).
    "text-right-after-a-closing-fence": Case(
        family(
            "setup",
            "### Fast setup\n```bash\n./setup-fast.sh\n```\n**Validated time**: 5 s\n",
        ),
        present=((REPORT.format("setup"), "```\n**Validated time**: 5 s"),),
        source="Python-Markdown puts a fence and the line after it in one paragraph "
        "(pymdownx.superfences; markdown-it closes the fence first)",
    ),
    "a-whole-program-on-one-line": Case(
        family(
            "tuning",
            "Exercise:\n```python\\nprint(`x`)\\nrun()\\n```",
            guide_extra='\n```bash\\n#!/bin/bash\\necho "`date`"\\n',
        ),
        present=((REPORT.format("tuning"), "```python\\nprint"),),
        source="pages exported with literal \\n (Python-Markdown and markdown-it read the "
        "backtick run as text, but not the same text around it)",
    ),
    "anchor-to-a-merged-heading": Case(
        family(
            "retry",
            "## Retry budget\n\nEach client may retry 3 times a minute.\n",
            **{
                "docs/index.md": "# Home\n\n"
                "See [the budget](../archive/retry_report.md#retry-budget).\n"
            },
        ),
        moved=(REPORT.format("retry"),),
        source="issue 12 item 6; mkdocs/mkdocs-redirects#16 (merged pages lose fragments)",
    ),
    "explicit-anchors": Case(
        family(
            "probe",
            "## Probe limits {#limits-v2}\n\nProbes time out after 5 s.\n\n"
            '<a id="soak"></a>\nSoak probes run hourly.\n',
            **{
                "docs/index.md": "# Home\n\n[Limits](../archive/probe_report.md#limits-v2), "
                "[soak](../archive/probe_report.md#soak).\n"
            },
        ),
        moved=(REPORT.format("probe"),),
        source="issue 12 item 6; facebook/docusaurus#9808 (named anchors)",
    ),
    "colliding-heading-slugs": Case(
        family(
            "queue",
            "## Usage\n\nDrain the queue before an upgrade.\n",
            guide_extra="\n## Usage\n\nStart the queue with one worker.\n",
            **{"docs/index.md": "# Home\n\n[How to drain](../archive/queue_report.md#usage).\n"},
        ),
        moved=(REPORT.format("queue"),),
        source="issue 12 item 6",
    ),
    "task-list-states": Case(
        {
            "docs/release.md": "# Release checklist\n\n- [x] Tag the release\n- [ ] Publish the "
            "images\n",
            "archive/release-old.md": "# Release checklist\n\n- [ ] Tag the release\n- [ ] "
            "Publish the images\n",
        },
        source="issue 12 item 2 (symbols are content); GFM task lists",
    ),
    "parentheses-and-titles-in-destinations": Case(
        family(
            "wiki",
            'See [the wiki](Wiki_(old).md) and ![the chart](chart.png "Weekly chart").\n',
            **{
                "archive/Wiki_(old).md": "# Old wiki\n\nThe wiki moved in May.\n",
                "archive/chart.png": b"\x89PNG-chart",
            },
        ),
        moved=(REPORT.format("wiki"),),
        source="markdown-it/markdown-it#567 and CommonMark §6.3 (balanced parentheses)",
    ),
    "links-in-table-cells": Case(
        family(
            "matrix",
            "| Area | Page |\n| --- | --- |\n| Limits | [limits](limits.md) |\n"
            '| Images | <img src="img/icon.png" alt="icon"> |\n',
            **{
                "archive/limits.md": "# Limits\n\nThe cap is 400 requests a second.\n",
                "archive/img/icon.png": b"\x89PNG-icon",
            },
        ),
        moved=(REPORT.format("matrix"),),
        source="prettier/prettier markdown tables with links; lychee links in tables",
    ),
    "ordered-list-starting-at-three": Case(
        family("rollout", "3. Drain the old pool.\n4. Delete the old pool.\n"),
        moved=(REPORT.format("rollout"),),
        source="CommonMark §5.2 (start number); Prettier list renumbering reports",
    ),
    "escapes-entities-and-code-spans": Case(
        family(
            "escape",
            "Use \\*literal stars\\* and a &lt; b &amp;&amp; c.\n\nRun `` `make` `` then `a|b`.\n",
        ),
        moved=(REPORT.format("escape"),),
        source="markdownlint MD049/MD038 reports (escapes, code spans with backticks)",
    ),
    "hard-line-breaks": Case(
        family("address", "Hive Labs  \n12 Queue Street\\\nRotterdam\n"),
        moved=(REPORT.format("address"),),
        source="prettier/prettier#19776 (hard line breaks)",
    ),
    "blockquote-with-a-list": Case(
        family("quote", "> Operators said:\n>\n> - the pager is too loud\n> - nights are long\n"),
        moved=(REPORT.format("quote"),),
        source="lazy continuation in block quotes (CommonMark §5.1)",
    ),
    "mermaid-and-snippet-lines": Case(
        family(
            "flow",
            '```mermaid\ngraph LR\n  A --> B\n```\n\n--8<-- "includes/abbreviations.md"\n',
        ),
        moved=(REPORT.format("flow"),),
        source="mkdocs-material diagrams; pymdownx.snippets lines in foreign trees",
    ),
    "docusaurus-admonitions-and-mdx": Case(
        family(
            "plugin",
            "import Tabs from '@theme/Tabs';\n\n:::note Plugins load once\n\n"
            "Restart the hive after adding one.\n\n:::\n",
        ),
        moved=(REPORT.format("plugin"),),
        source="facebook/docusaurus admonition syntax (:::note) read by other engines",
    ),
    "attribute-lists": Case(
        family(
            "banner",
            'Maintenance starts at 02:00 UTC.\n{: .banner }\n\n## Window {#window data-x="1"}\n\n'
            "Two hours.\n",
            **{"docs/index.md": "# Home\n\n[Window](../archive/banner_report.md#window).\n"},
        ),
        moved=(REPORT.format("banner"),),
        source="Python-Markdown attr_list (MkDocs Material custom ids)",
    ),
    "front-matter-closed-by-dots": Case(
        family(
            "token",
            "Tokens expire after an hour.\n",
            **{
                "archive/token_report.md": "---\ntitle: Token report\n...\n# Token report\n\n"
                "Tokens expire after an hour.\n"
            },
        ),
        moved=(REPORT.format("token"),),
        present=((GUIDE.format("token"), "title: Token report"),),
        source="jgm/pandoc#2251, #2668 (YAML metadata ended by `...`)",
    ),
    "links-to-folders-and-fragments-only": Case(
        family(
            "portal",
            "Back to [the top](#portal-report), [the archive](./) and [docs](../docs/).\n",
        ),
        moved=(REPORT.format("portal"),),
        source="mkdocs unrecognized relative links to folders; lychee#1751 (folder index)",
    ),
    "reference-definitions-as-comments": Case(
        family(
            "lint",
            "[//]: # (markdownlint-disable MD053)\n[unused]: https://example.com/unused\n"
            "[//]: # (markdownlint-enable MD053)\n\nLint runs on every push.\n",
        ),
        moved=(REPORT.format("lint"),),
        source="DavidAnson/markdownlint#1263 (`[//]: # (...)` comments)",
    ),
    "html-link-around-an-image": Case(
        family(
            "demo",
            '<a href="video.md">\n  <img width="75%" src="img/thumb.png" alt="demo video">\n'
            "</a>\n\nThe demo shows one hive with three agents.\n",
            **{
                "archive/video.md": "# Video\n\nA three-minute walkthrough.\n",
                "archive/img/thumb.png": b"\x89PNG-thumb",
            },
        ),
        moved=(REPORT.format("demo"),),
        source="DavidAnson/markdownlint#467 (<a><img></a> in READMEs)",
    ),
    # ---- item 4: reading input -------------------------------------------------------------
    "lone-cr-line-endings": Case(
        family("relay", "Relays forward frames in order.\n\nA relay drops idle peers.\n"),
        prepare=_lone_cr,
        moved=(REPORT.format("relay"),),
        source="issue 12 item 4 (classic Mac line endings)",
    ),
    "crlf-line-endings": Case(
        {
            **family("ingest", "Ingest batches hold 500 rows.\r\n\r\nBatches retry twice.\r\n"),
        },
        moved=(REPORT.format("ingest"),),
        source="Windows line endings (Prettier endOfLine, markdownlint)",
    ),
    "bom-before-front-matter": Case(
        family(
            "billing",
            "Invoices go out on the first day of each month.\n",
            **{
                "archive/billing_report.md": "\ufeff---\ntitle: Billing report\ntags: [ops]\n---\n"
                "# Billing report\n\nInvoices go out on the first day of each month.\n"
            },
        ),
        moved=(REPORT.format("billing"),),
        present=((GUIDE.format("billing"), "title: Billing report"),),
        source="issue 12 item 4; mkdocs reads pages as utf-8-sig",
    ),
    "symlinked-page-and-folder": Case(
        family(
            "gateway",
            "Gateways shed load above 90 % CPU.\n",
            **{"docs/index.md": "# Home\n\n[Latest](latest.md) and [current](../current/).\n"},
        ),
        prepare=_symlinks,
        source="issue 12 item 4",
    ),
    "non-utf8-page": Case(
        family(
            "legacy",
            "Legacy exports use Latin-1.\n",
            **{"archive/legacy_report.md": b"# Legacy report\n\nCaf\xe9 exports use Latin-1.\n"},
        ),
        source="issue 12 item 4",
    ),
    # ---- item 5: options mean what they say ------------------------------------------------
    "protect-is-never-a-destination": Case(
        {
            "docs/upload-retries.md": "# Upload retries\n\nUploads retry 3 times.\n\n"
            "The retry delay doubles each time.\n",
            "versions/1.0/upload-retries.md": "# Upload retries\n\nUploads retry 3 times.\n\n"
            "The retry delay doubles each time.\n\nVersion 1.0 capped the delay at 30 s.\n",
        },
        args=("--protect", "versions/**"),
        present=(("docs/upload-retries.md", "Uploads retry 3 times."),),
        source="issue 12 item 5",
    ),
    "plan-inside-src-is-refused": Case(
        family("audit", "Audit logs are kept 90 days.\n"),
        args=("--plan", "{src}/plan.json"),
        refused="--plan",
        source="issue 12 item 5",
    ),
    "report-inside-src-is-refused": Case(
        family("audit", "Audit logs are kept 90 days.\n"),
        args=("--report", "{src}/report.md"),
        refused="--report",
        source="issue 12 item 5",
    ),
}


def build(root: Path, files: Files) -> Path:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode("utf-8"))
    return root


def digest(root: Path) -> str:
    """SHA-256 of every path, link target and file's bytes under `root` (links not followed)."""
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.is_symlink():
            sha.update(os.readlink(path).encode())
        elif path.is_file():
            sha.update(path.read_bytes())
    return sha.hexdigest()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def consolidate(
    case: Case, src: Path, work: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Path, Path, str]:
    """Run plan and apply through the command line: (exit status, DEST, PLAN.json, stderr)."""
    dest, plan = work / "dest", work / "plan.json"
    args = [a.replace("{src}", str(src)) for a in case.args]
    if "--plan" not in args:
        args += ["--plan", str(plan)]
    code = main(["consolidate", str(src), "--apply", "--out", str(dest), "--quiet", *args])
    return code, dest, plan, capsys.readouterr().err


def params() -> list[object]:
    out = []
    for name, case in CASES.items():
        marks = list(case.marks)
        if case.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.unit
@pytest.mark.parametrize("name", params())
def test_a_tree_of_this_kind_keeps_every_promise(
    name: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    src = build(workdir / "src", case.files)
    if case.prepare:
        case.prepare(src)
    before = digest(src)
    code, dest, plan, err = consolidate(case, src, workdir, capsys)
    assert digest(src) == before, "SRC changed"
    if case.refused:
        assert code == 2 and case.refused in err, err
        assert not dest.exists()
        return
    if name == "non-utf8-page" and code == 2:
        # Refusing a page that is not UTF-8 is allowed when the message names it.
        assert "archive/legacy_report.md" in err, err
        return
    assert code == 0, err
    document = json.loads(plan.read_text(encoding="utf-8"))
    redirects = json.loads((dest / "redirects.json").read_text(encoding="utf-8"))
    assert set(case.moved) <= set(redirects), "the case must move these pages"
    # Direct checks, sharing nothing with the consolidator or the audit.
    for path in _files(src):
        target = dest / path
        if path in redirects:
            assert not target.exists() and (dest / redirects[path]).is_file(), path
        else:
            assert target.is_file(), f"{path} is neither in DEST nor redirected"
        if not path.endswith(".md") or _not_utf8(src / path):
            assert target.read_bytes() == (src / path).read_bytes(), path
    for path in _files(dest):
        if path.endswith(".md") and (dest / path).read_bytes() != _bytes_or_none(src / path):
            (dest / path).read_bytes().decode("utf-8")  # nothing undecodable was spliced in
    for path, text in case.present:
        assert text in (dest / path).read_text(encoding="utf-8"), (path, text)
    covered = {d["path"]: d["covered_by"] for d in document["deletions"]}
    result = audit_trees(src, dest, covered, workers=1)
    assert result.ok, "\n".join(str(d) for d in result.differences)
    assert result.blocks_kept == result.blocks_total > 0


def _files(root: Path) -> list[str]:
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder, n).relative_to(root).as_posix() for n in names]
    return sorted(p for p in found if p != "redirects.json")


def _not_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _bytes_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


@pytest.mark.integration
@pytest.mark.parametrize(
    "unreadable",
    [
        "archive/locked.md",
        "archive/locked",
    ],
)
def test_an_unreadable_file_or_folder_is_an_error_naming_it(unreadable: str, workdir: Path) -> None:
    files = family("lock", "Locks expire after 30 s.\n")
    files["archive/locked.md"] = "# Locked\n\nNobody may read this page.\n"
    files["archive/locked/inner.md"] = "# Inner\n\nNor this one.\n"
    src = build(workdir / "src", files)
    (src / unreadable).chmod(0)
    try:
        # As root, chmod 000 stops reads only without CAP_DAC_OVERRIDE (see as_unprivileged).
        done = subprocess.run(
            [*as_unprivileged(), sys.executable, "-m", "docs_automation", "consolidate",
             str(src), "--apply", "--out", str(workdir / "d"), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        (src / unreadable).chmod(0o755)
    assert done.returncode == 2 and unreadable in done.stderr
    assert not (workdir / "d").exists()


@pytest.mark.unit
def test_the_published_tree_gets_the_usual_permissions(workdir: Path) -> None:
    src = build(workdir / "src", family("perm", "Permissions follow the umask.\n"))
    assert main(["consolidate", str(src), "--apply", "--out", str(workdir / "d"), "--quiet"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (workdir / "d").stat().st_mode & 0o777 == 0o777 & ~umask
