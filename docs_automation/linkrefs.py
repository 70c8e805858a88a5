"""Link reference definitions (`[label]: url`) carried into another page without clashes.

Labels are page-wide, and the first definition of a label wins (CommonMark). Two READMEs that
both define `[npm]` for different URLs cannot simply be concatenated: the second URL would
be silently ignored. So when a merged page brings a label the target already defines for
another URL, the label is renamed (`npm-2`) in the definition and in every link of that
page that uses it. Unit keys ignore reference labels, so the rename loses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .corpus import Unit

__all__ = ["carry_references", "defined_labels", "label_of", "relabel"]

_DEFINITION_RE = re.compile(r"^ {0,3}\[([^\]\n]+)\]:")


def label_of(definition: str) -> str:
    """The normalised label of a definition's Markdown (case and inner spaces folded)."""
    match = _DEFINITION_RE.match(definition)
    return " ".join(match.group(1).lower().split()) if match else ""


def defined_labels(units: Sequence[Unit], sources: Sequence[str]) -> dict[str, str]:
    """Label to unit key of every reference definition among a page's units."""
    return {
        label_of(source): unit.key
        for unit, source in zip(units, sources, strict=True)
        if unit.kind == "reference"
    }


def carry_references(
    units: Sequence[Unit], sources: Sequence[str], defined: dict[str, str]
) -> tuple[dict[str, str], set[int]]:
    """Plan how a page's definitions join a page that already defines `defined`.

    Args:
        units: the merged page's units.
        sources: the Markdown of each of `units` (`unit_sources`), in the same order.
        defined: label to key on the target so far; updated with what this page adds.

    Returns:
        The labels to rename (old to new), and the indexes of definitions to leave out
        because the target already defines the same label for the same destination.
    """
    renames: dict[str, str] = {}
    skip: set[int] = set()
    for index, (unit, source) in enumerate(zip(units, sources, strict=True)):
        if unit.kind != "reference":
            continue
        label = label_of(source)
        if defined.get(label) == unit.key:
            skip.add(index)
        elif label in defined:
            number = 2
            while f"{label}-{number}" in defined:
                number += 1
            renames[label] = f"{label}-{number}"
            defined[renames[label]] = unit.key
        else:
            defined[label] = unit.key
    return renames, skip


def relabel(text: str, renames: Mapping[str, str]) -> str:
    """Rename reference labels in definitions and in full, collapsed and shortcut links."""
    for old, new in renames.items():
        label = r"\s+".join(re.escape(part) for part in old.split())
        text = re.sub(rf"^( {{0,3}}\[){label}(\]:)", rf"\g<1>{new}\g<2>", text,
                      flags=re.IGNORECASE | re.MULTILINE)  # fmt: skip
        text = re.sub(rf"\]\[{label}\]", f"][{new}]", text, flags=re.IGNORECASE)
        text = re.sub(rf"\[({label})\](?:\[\])?(?![\[(:])", rf"[\g<1>][{new}]", text,
                      flags=re.IGNORECASE)  # fmt: skip
    return text
