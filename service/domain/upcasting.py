"""Upcasters: old event payloads turned into today's shape when read.

Stored events are never rewritten (the hash chain covers their bytes); each breaking change to a payload
bumps its type's `schema_version` and registers here one function from the old shape to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def byline_to_contributors(data: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2 of post.published and post.edited: a free-text byline becomes a list of contributors."""
    if "byline" not in data:
        return data
    upgraded = {k: v for k, v in data.items() if k != "byline"}
    byline = data["byline"]
    upgraded["contributors"] = [] if byline is None else [{"name": byline}]
    return upgraded


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("post.published", 1): byline_to_contributors,
    ("post.edited", 1): byline_to_contributors,
}


def upcast(type_: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    version = schema_version
    while (type_, version) in UPCASTERS:
        data = UPCASTERS[type_, version](data)
        version += 1
    return data
