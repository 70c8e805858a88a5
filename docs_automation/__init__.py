"""Maintainers' tools: the docs consolidator and the living-docs checker."""

from __future__ import annotations

__all__: list[str] = []
