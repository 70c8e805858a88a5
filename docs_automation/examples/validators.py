"""Checks for the docs' blocks that are data rather than programs.

Each function takes a block's text (and, where the check needs the live server, what the
server answered) and raises `BlockError` with a sentence saying what is wrong. JSON frames
are checked against `schemas/ws_messages.schema.json`, environment snippets against
`reference_server.settings.Settings`, Prometheus rules against the metric names the server
really exports, and Markdown samples by classifying their own fences.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from prometheus_client.parser import text_string_to_metric_families

from reference_server.errors import SettingsError
from reference_server.messages import SCHEMA
from reference_server.settings import Settings

from ..errors import BlockError
from .fences import classify, scan

__all__ = [
    "check_frame",
    "check_markdown",
    "check_prometheus",
    "check_settings",
    "metric_names",
    "scrape_targets",
]

_FRAMES = Draft7Validator(SCHEMA)
_ENV_LINE = re.compile(r"^(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_METRIC = re.compile(r"\bleanvibe_ws_[a-z0-9_]+")
_DURATION = re.compile(r"^\d+(ms|s|m|h|d)$")
_METRIC_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def check_frame(text: str) -> str:
    """Validate one JSON frame against the schema; return its `type`.

    Raises:
        BlockError: not JSON, or no frame of the schema matches.
    """
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise BlockError(f"not JSON: {exc}") from None
    error = best_match(_FRAMES.iter_errors(frame))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the frame"
        raise BlockError(f"not a valid frame ({where}): {error.message}")
    return str(frame["type"])


def check_settings(text: str) -> Settings:
    """Parse `KEY=value` lines (comments and `export` allowed) into validated settings.

    Raises:
        BlockError: a line is not `KEY=value`, a key is no setting, or a value is refused.
    """
    known = {Settings.env_name(f.name) for f in fields(Settings)}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parsed = _ENV_LINE.match(stripped)
        if parsed is None:
            raise BlockError(f"line {number} is not KEY=value: {stripped!r}")
        key = parsed["key"]
        if key not in known:
            raise BlockError(f"line {number}: {key} is not a setting of the reference server")
        values[key] = parsed["value"].strip().strip("'\"")
    if not values:
        raise BlockError("no settings in the block")
    try:
        return Settings.from_env(values)
    except SettingsError as exc:
        raise BlockError(f"the server would refuse this: {exc}") from None


def metric_names(exposition: str) -> set[str]:
    """Every family and sample name in a Prometheus text exposition."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _load_yaml(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BlockError(f"not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BlockError("a Prometheus file is a YAML mapping")
    return doc


def scrape_targets(text: str) -> list[str]:
    """The `http://host:port/path` URLs a Prometheus scrape config would fetch.

    Raises:
        BlockError: the config has no static targets.
    """
    doc = _load_yaml(text)
    urls = []
    for job in doc.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        scheme = job.get("scheme", "http")
        for static in job.get("static_configs") or []:
            urls += [f"{scheme}://{target}{path}" for target in static.get("targets", [])]
    if not urls:
        raise BlockError("the scrape config names no static targets")
    return urls


def check_prometheus(text: str, exported: set[str]) -> int:
    """Check alerting/recording rules against the metric names the server exports.

    Args:
        text: the rules file (a `groups:` mapping) or a scrape config (`scrape_configs:`).
        exported: `metric_names` of the live server's exposition.

    Returns:
        How many rules (or scrape jobs) were checked.

    Raises:
        BlockError: a rule lacks a field, has a bad duration, or names a metric the server
            does not export.
    """
    doc = _load_yaml(text)
    if "scrape_configs" in doc:
        return len(doc["scrape_configs"])
    checked = 0
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            if not name or not isinstance(rule.get("expr"), str):
                raise BlockError(f"a rule in group {group.get('name')!r} lacks alert/expr")
            duration = str(rule.get("for", "0s"))
            if not _DURATION.match(duration):
                raise BlockError(f"{name}: `for: {duration}` is not a Prometheus duration")
            for metric in _METRIC.findall(rule["expr"]):
                # A labelled family with no children yet exports only its family name.
                bases = {metric.removesuffix(s) for s in _METRIC_SUFFIXES if s}
                if not ({metric} | bases) & exported:
                    raise BlockError(f"{name}: the server exports no metric {metric}")
            checked += 1
    if not checked:
        raise BlockError("no rules in the block")
    return checked


def check_markdown(text: str, page: str) -> int:
    """Check that every fence in a Markdown sample is one the harness knows how to prove.

    Returns:
        How many fences the sample holds.

    Raises:
        BlockError: a fence in the sample would be unclassified.
    """
    inner = scan(page, text)
    for fence in inner:
        if classify(fence) is None:
            raise BlockError(f"its `{fence.lang or 'no language'}` fence would be unclassified")
    return len(inner)
