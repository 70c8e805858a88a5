"""The metrics page (`docs/reference/metrics.md`), from a fresh `Metrics()` registry.

Every metric the server exposes, with its type, labels, buckets and the meaning written in
`METRIC_DOCS`; the registry and `METRIC_DOCS` must agree or the generator stops.
"""

from __future__ import annotations

from pathlib import Path

from reference_server.metrics import METRIC_DOCS, Metrics

from ..errors import GenerateError
from .generator import Rendered
from .markdown import banner, code, table

__all__ = ["PAGE", "metrics", "render"]

PAGE = "docs/reference/metrics.md"
"""The metrics page, relative to the repository root."""


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
    """The metrics page (`root` is unused: the page comes from the imported code)."""
    return {PAGE: metrics()}
