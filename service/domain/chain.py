"""The per-coverage SHA-256 hash chain over a canonical encoding of each event (SPEC §2, §4a)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec

GENESIS = "0" * 64

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_event(
    *,
    coverage_id: str,
    version: int,
    post_id: str | None,
    type_: str,
    schema_version: int,
    data: Any,
    metadata: Any,
    recorded_at: datetime,
) -> bytes:
    """The bytes an event's hash covers: every stored field but its position and hashes, keys sorted."""
    return _canonical.encode(
        {
            "coverage_id": coverage_id,
            "version": version,
            "post_id": post_id,
            "type": type_,
            "schema_version": schema_version,
            "data": data,
            "metadata": metadata,
            "recorded_at": canonical_time(recorded_at),
        }
    )


def link(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()
