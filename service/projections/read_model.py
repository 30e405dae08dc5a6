"""The reader tables: one row per coverage and per post holding its folded state, and the queries on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from service.domain.events import RecordedEvent
from service.domain.state import CoverageState, PostState, evolve

Order = Literal["newest", "oldest"]

_UPSERT_COVERAGE = """
INSERT INTO coverages (id, version, started_at, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
"""
_UPSERT_POST = """
INSERT INTO posts (id, coverage_id, sequence, key_event, retracted, state) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE
SET key_event = EXCLUDED.key_event, retracted = EXCLUDED.retracted, state = EXCLUDED.state
"""


def coverage_row(c: CoverageState) -> tuple[object, ...]:
    return (c.id, c.version, c.started_at, c)


def post_row(p: PostState) -> tuple[object, ...]:
    return (p.id, p.coverage_id, p.sequence, p.key_event, p.retracted, p)


async def load_coverage(conn: asyncpg.Connection, coverage_id: str) -> CoverageState | None:
    state = await conn.fetchval("SELECT state FROM coverages WHERE id = $1", coverage_id)
    return None if state is None else msgspec.convert(state, CoverageState)


async def load_post(conn: asyncpg.Connection, post_id: str) -> PostState | None:
    state = await conn.fetchval("SELECT state FROM posts WHERE id = $1", post_id)
    return None if state is None else msgspec.convert(state, PostState)


async def project(
    conn: asyncpg.Connection, coverage: CoverageState | None, post: PostState | None, event: RecordedEvent
) -> tuple[CoverageState, PostState | None]:
    """Fold one appended event into the reader tables, in the append's transaction."""
    coverage, post = evolve(coverage, post, event)
    await conn.execute(_UPSERT_COVERAGE, *coverage_row(coverage))
    if post is not None:
        await conn.execute(_UPSERT_POST, *post_row(post))
    return coverage, post


async def latest_post_id(conn: asyncpg.Connection, coverage_id: str) -> str | None:
    post_id = await conn.fetchval(
        "SELECT id FROM posts WHERE coverage_id = $1 AND NOT retracted ORDER BY sequence DESC LIMIT 1",
        coverage_id,
    )
    return post_id if isinstance(post_id, str) else None


async def list_coverages(
    conn: asyncpg.Connection, limit: int, after: tuple[datetime, str] | None
) -> Sequence[CoverageState]:
    """Newest first; `after` is the (started_at, id) of the last coverage of the previous page."""
    if after is None:
        rows = await conn.fetch(
            "SELECT state FROM coverages ORDER BY started_at DESC, id DESC LIMIT $1", limit
        )
    else:
        rows = await conn.fetch(
            "SELECT state FROM coverages WHERE (started_at, id) < ($2, $3) "
            "ORDER BY started_at DESC, id DESC LIMIT $1",
            limit,
            *after,
        )
    return [msgspec.convert(row["state"], CoverageState) for row in rows]


async def timeline_posts(
    conn: asyncpg.Connection,
    coverage_id: str,
    *,
    limit: int,
    order: Order,
    past: int | None,
    key_events_only: bool,
) -> Sequence[PostState]:
    """Visible posts in publish order; `past` is the sequence the previous page stopped at."""
    newest = order == "newest"
    bound = (2**31 - 1 if newest else 0) if past is None else past
    key_filter = "AND key_event" if key_events_only else ""
    # Both statements are spelled out so each uses the partial index in the right direction.
    if newest:
        query = (
            "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted "
            f"{key_filter} AND sequence < $2 ORDER BY sequence DESC LIMIT $3"
        )
    else:
        query = (
            "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted "
            f"{key_filter} AND sequence > $2 ORDER BY sequence ASC LIMIT $3"
        )
    rows = await conn.fetch(query, coverage_id, bound, limit)
    return [msgspec.convert(row["state"], PostState) for row in rows]
