"""Rebuild the reader tables from the log with the same fold as the live projection.

`rebuild` replaces them inside the caller's transaction (import uses it). `rebuild_online` is the
zero-downtime one: it fills new tables beside the live ones from a snapshot, in bulk (COPY), catches up
with what was appended meanwhile, and swaps them in one short transaction; `check=True` compares instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import asyncpg
from msgspec import Struct

from service.domain.state import Timeline, fold
from service.projections.read_model import (
    COVERAGE_COLUMNS,
    LIVE,
    NEXT,
    POST_COLUMNS,
    Tables,
    coverage_row,
    load_coverage,
    load_post,
    post_row,
    project,
)
from service.store import events, locks
from service.store.events import NOTIFY_CHANNEL, REBUILT
from service.store.pool import Connection

Progress = Callable[[int, int], None]
"""Called with (events replayed, events in the snapshot) as the rebuild goes."""

_FLUSH_ROWS = 2_000


class RebuildResult(Struct, frozen=True, kw_only=True):
    replayed: int
    caught_up: int
    seconds: float
    differences: list[str] = []


async def rebuild(conn: Connection) -> int:
    """Replace the reader tables with a fresh replay, in one transaction holding them exclusively."""
    async with conn.transaction():
        await locks.hold_writers(conn)
        await conn.execute("LOCK TABLE coverages, posts IN ACCESS EXCLUSIVE MODE")
        await conn.execute("TRUNCATE coverages, posts")
        return await _replay_into(conn, conn, LIVE, None)


async def _replay_into(source: Connection, target: Connection, tables: Tables, progress: Progress | None) -> int:
    """Fold every coverage's stream (as `source` sees the log) and COPY the states into `tables`."""
    total = await events.count(source)
    coverages: list[tuple[object, ...]] = []
    posts: list[tuple[object, ...]] = []
    replayed = 0
    timeline: Timeline | None = None

    async def flush() -> None:
        if coverages:
            await target.copy_records_to_table(tables.coverages, records=coverages, columns=COVERAGE_COLUMNS)
        if posts:
            await target.copy_records_to_table(tables.posts, records=posts, columns=POST_COLUMNS)
        coverages.clear()
        posts.clear()

    def keep(done: Timeline) -> None:
        assert done.coverage is not None
        coverages.append(coverage_row(done.coverage))
        posts.extend(post_row(post) for post in done.posts.values())

    async for event in events.each_recorded_in_chain_order(source):
        if timeline is not None and timeline.coverage is not None and timeline.coverage.id != event.coverage_id:
            keep(timeline)
            timeline = None
            if len(posts) + len(coverages) >= _FLUSH_ROWS:
                await flush()
        timeline = fold(timeline or Timeline(), event)
        replayed += 1
        if progress is not None and replayed % 500 == 0:
            progress(replayed, total)
    if timeline is not None:
        keep(timeline)
    await flush()
    if progress is not None:
        progress(replayed, total)
    return replayed


class RebuildBusy(Exception):
    pass


async def rebuild_online(
    reader: Connection, writer: Connection, *, check: bool = False, progress: Progress | None = None
) -> RebuildResult:
    """Build new reader tables beside the live ones while the service keeps serving, then swap them in.

    Readers are never blocked but for the instant of the rename; writers wait only while the events
    appended during the build are folded in. With `check`, nothing is swapped: the differences between the
    live tables and a fresh replay are reported and the new tables dropped.
    """
    started = time.monotonic()
    if not await locks.try_rebuild(writer):
        raise RebuildBusy("another rebuild is running")
    try:
        for live, fresh in ((LIVE.coverages, NEXT.coverages), (LIVE.posts, NEXT.posts)):
            await writer.execute(f"DROP TABLE IF EXISTS {fresh}")
            await writer.execute(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)")
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            # Every transaction older than this horizon is in the snapshot; catch-up looks only above it.
            horizon = await reader.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            replayed = await _replay_into(reader, writer, NEXT, progress)
        for attempt in range(1, _SWAP_ATTEMPTS + 1):
            try:
                return await _finish(writer, horizon, check, replayed, started)
            except asyncpg.LockNotAvailableError:
                if attempt == _SWAP_ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")
    finally:
        await writer.execute(f"DROP TABLE IF EXISTS {NEXT.coverages}, {NEXT.posts}")
        await locks.end_rebuild(writer)


_SWAP_ATTEMPTS = 10


async def _finish(writer: Connection, horizon: str, check: bool, replayed: int, started: float) -> RebuildResult:
    async with writer.transaction():
        # Never queue long behind a slow reader or writer (everyone would queue behind us): give up and retry.
        await writer.execute("SET LOCAL lock_timeout = '2s'")
        # Writers wait from here; readers go on reading the live tables until the rename.
        await locks.hold_writers(writer)
        caught_up = await _catch_up(writer, horizon)
        if check:
            differences = await _differences(writer)
            return RebuildResult(
                replayed=replayed, caught_up=caught_up, seconds=time.monotonic() - started, differences=differences
            )
        for live, fresh in ((LIVE.coverages, NEXT.coverages), (LIVE.posts, NEXT.posts)):
            await _swap(writer, live, fresh)
        await writer.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, REBUILT)
    return RebuildResult(replayed=replayed, caught_up=caught_up, seconds=time.monotonic() - started)


async def _catch_up(conn: Connection, horizon: str) -> int:
    """Fold into the new tables the events appended after the snapshot the build read."""
    appended = await events.appended_after(conn, horizon, NEXT.coverages)
    for event in appended:
        coverage = await load_coverage(conn, event.coverage_id, NEXT)
        post = await load_post(conn, event.post_id, NEXT) if event.post_id else None
        await project(conn, coverage, post, event, NEXT)
    return len(appended)


async def _differences(conn: Connection) -> list[str]:
    found: list[str] = []
    rows = await conn.fetch(
        f"""SELECT COALESCE(l.id, n.id) AS id FROM {LIVE.coverages} l FULL JOIN {NEXT.coverages} n USING (id)
            WHERE (l.version, l.started_at, l.state) IS DISTINCT FROM (n.version, n.started_at, n.state)
            ORDER BY 1"""  # noqa: S608
    )
    found += [f"coverage {row['id']} differs from a replay of its events" for row in rows]
    rows = await conn.fetch(
        f"""SELECT COALESCE(l.id, n.id) AS id FROM {LIVE.posts} l FULL JOIN {NEXT.posts} n USING (id)
            WHERE (l.coverage_id, l.sequence, l.changed_version, l.key_event, l.retracted, l.state)
                  IS DISTINCT FROM (n.coverage_id, n.sequence, n.changed_version, n.key_event, n.retracted, n.state)
            ORDER BY 1"""  # noqa: S608
    )
    found += [f"post {row['id']} differs from a replay of its events" for row in rows]
    return found


_INDEX_NAME = re.compile(r"INDEX \S+ ON \S+")


async def _swap(conn: Connection, live: str, fresh: str) -> None:
    """Put `fresh` in place of `live`, and give its indexes the names migrations know them by."""
    retired = f"{live}_retired"
    await conn.execute(f"ALTER TABLE {live} RENAME TO {retired}")
    await conn.execute(f"ALTER TABLE {fresh} RENAME TO {live}")
    names = {
        _INDEX_NAME.sub("INDEX ON", row["indexdef"]): row["indexname"]
        for row in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", retired)
    }
    renames = [
        (row["indexname"], names.get(_INDEX_NAME.sub("INDEX ON", row["indexdef"])))
        for row in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", live)
    ]
    await conn.execute(f"DROP TABLE {retired}")
    for current, wanted in renames:
        if wanted and wanted != current:
            await conn.execute(f'ALTER INDEX "{current}" RENAME TO "{wanted}"')
