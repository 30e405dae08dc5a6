"""Rebuild the reader tables from the log: replay every coverage's stream with the same fold."""

from __future__ import annotations

from service.domain.state import Timeline, fold
from service.projections.read_model import coverage_row, post_row
from service.store.events import from_row
from service.store.pool import Connection


async def rebuild(conn: Connection) -> int:
    """Replace the reader tables with a fresh replay of the whole log; returns the events replayed.

    Runs in one transaction holding an exclusive lock on the reader tables, so appends and reads wait
    for it and nobody sees a half-built model. (A zero-downtime rebuild is a later issue.)
    """
    replayed = 0
    async with conn.transaction():
        await conn.execute("LOCK TABLE coverages, posts IN ACCESS EXCLUSIVE MODE")
        await conn.execute("TRUNCATE coverages, posts")
        timeline: Timeline | None = None
        async for row in conn.cursor("SELECT * FROM events ORDER BY coverage_id, version", prefetch=500):
            event = from_row(row)
            if timeline is not None and timeline.coverage is not None and timeline.coverage.id != event.coverage_id:
                await _save(conn, timeline)
                timeline = None
            timeline = fold(timeline or Timeline(), event)
            replayed += 1
        if timeline is not None:
            await _save(conn, timeline)
    return replayed


async def _save(conn: Connection, timeline: Timeline) -> None:
    assert timeline.coverage is not None
    await conn.execute(
        "INSERT INTO coverages (id, version, started_at, state) VALUES ($1, $2, $3, $4)",
        *coverage_row(timeline.coverage),
    )
    await conn.executemany(
        "INSERT INTO posts (id, coverage_id, sequence, changed_version, key_event, retracted, state) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [post_row(post) for post in timeline.posts.values()],
    )
