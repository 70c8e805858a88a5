"""The table-shaped reference pages: configuration, command line and metrics.

Each is read from the running code: the `Settings` dataclass and `SETTING_DOCS`, the argparse
parsers of both commands, and a fresh `Metrics()` registry. A setting or metric without a
written meaning stops the generator, so the pages can never list a name without saying what
it does.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

from reference_server import Settings
from reference_server.__main__ import build_parser
from reference_server.metrics import METRIC_DOCS, Metrics
from reference_server.settings import SETTING_DOCS

from .generator import GenerateError, Rendered
from .markdown import banner, code, table

__all__ = ["CLI_PAGE", "CONFIG_PAGE", "METRICS_PAGE", "render"]

CONFIG_PAGE = "docs/reference/configuration.md"
"""The configuration page, relative to the repository root."""

CLI_PAGE = "docs/reference/cli.md"
"""The command-line page, relative to the repository root."""

METRICS_PAGE = "docs/reference/metrics.md"
"""The metrics page, relative to the repository root."""


def _default(value: object) -> str:
    if isinstance(value, bool):
        return code(str(value).lower())
    if value in ("", ()):
        return "(empty)"
    if isinstance(value, tuple):
        return code(",".join(map(str, value)))
    return code(value)


def configuration() -> str:
    """The configuration page: every `Settings` field, in declaration order.

    Raises:
        GenerateError: a field has no entry in `SETTING_DOCS`.
    """
    rows = []
    for f in dataclasses.fields(Settings):
        if f.name not in SETTING_DOCS:
            raise GenerateError(f"setting {f.name} has no entry in SETTING_DOCS")
        unit, meaning = SETTING_DOCS[f.name]
        rows.append((code(Settings.env_name(f.name)), _default(f.default), unit or "—", meaning))
    return (
        banner("apiref", "reference_server.settings")
        + "\n# Configuration\n\nEvery limit and switch of the reference server is an environment "
        "variable, read once at start-up. A value out of range stops the server with a sentence "
        "naming the variable; an unknown `WS_*` name is refused too, so a typo cannot leave a "
        "default in force. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; "
        "lists are comma-separated.\n\n" + table(("Variable", "Default", "Unit", "Meaning"), rows)
    )


def _parser_section(title: str, parser: argparse.ArgumentParser, level: str) -> str:
    rows = []
    subsections = []
    for action in parser._actions:  # argparse has no public listing of its arguments
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subsections.append(_parser_section(f"{parser.prog} {name}", sub, level + "#"))
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(code(o) for o in action.option_strings) or code(action.dest)
        choices = ", ".join(code(c) for c in action.choices) if action.choices else ""
        rows.append((names, action.help or "", choices))
    out = f"{level} `{title}`\n\n{parser.description or ''}\n\n"
    # One line of inline code: argparse wraps usage to the terminal's width, a page should not.
    out += f"Usage: {code(' '.join(parser.format_usage().split()[1:]))}\n"
    if rows:
        out += "\n" + table(("Option", "Meaning", "Choices"), rows)
    if parser.epilog:
        out += f"\n{parser.epilog}\n"
    return out + "\n" + "".join(subsections)


def _docs_parser() -> argparse.ArgumentParser:
    # Mirrors docs_automation.__main__.main, which builds its parser inline.
    commands = importlib.import_module("docs_automation.__main__").COMMANDS
    parser = argparse.ArgumentParser(
        prog="python -m docs_automation", description="The maintainers' docs tools."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"docs_automation.{name}").register(subcommands)
    return parser


def cli() -> str:
    """The command-line page: both programs' options, from their argparse parsers."""
    return (
        banner("apiref", "the argparse parsers of reference_server and docs_automation")
        + "\n# Command line\n\n"
        + _parser_section("python -m reference_server", build_parser(), "##")
        + _parser_section("python -m docs_automation", _docs_parser(), "##")
    ).rstrip() + "\n"


def metrics() -> str:
    """The metrics page: every metric of a fresh registry, with its type, labels and meaning.

    Raises:
        GenerateError: the registry and `METRIC_DOCS` disagree.
    """
    rows = []
    made = set()
    for family in Metrics().registry.collect():
        made.add(family.name)
        if family.name not in METRIC_DOCS:
            raise GenerateError(f"metric {family.name} has no entry in METRIC_DOCS")
        _, labels, _ = METRIC_DOCS[family.name]
        exposed = family.name + ("_total" if family.type == "counter" else "")
        buckets = [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]
        meaning = family.documentation + (f" Buckets (s): {', '.join(buckets)}." if buckets else "")
        rows.append((code(exposed), family.type, ", ".join(map(code, labels)) or "—", meaning))
    missing = sorted(set(METRIC_DOCS) - made)
    if missing:
        raise GenerateError(f"metrics in METRIC_DOCS but not in the registry: {missing}")
    return (
        banner("apiref", "reference_server.metrics")
        + "\n# Metrics\n\nThe server exposes Prometheus text at "
        "`/api/dashboard/metrics/websockets`. Counters end in `_total`; gauges never do. "
        "Every value is measured by the server, none is a constant.\n\n"
        + table(("Metric", "Type", "Labels", "Meaning"), rows)
    )


def render(root: Path) -> Rendered:
    """The configuration, command-line and metrics pages."""
    return {CONFIG_PAGE: configuration(), CLI_PAGE: cli(), METRICS_PAGE: metrics()}
