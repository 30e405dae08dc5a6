"""The event log: every SQL statement that appends or reads events.

Concurrency: an append takes a transaction-scoped advisory lock on its coverage, so a coverage's
`version` is dense and its events become visible in version order; different coverages append in
parallel. Each row stores the writer's xid8 so global readers can apply a visibility horizon (SPEC §4a).
The table itself refuses UPDATE, DELETE and TRUNCATE (migration 0001).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from service.domain.chain import GENESIS, LoggedEvent, canonical_event, canonical_time, commit, link, new_salt
from service.domain.events import (
    EventData,
    Metadata,
    RecordedEvent,
    decode_payload,
    erased_payload,
    event_type,
    payload,
)
from service.store import locks
from service.store.pool import Connection

NOTIFY_CHANNEL = "liveline_events"
REBUILT = "*rebuilt"
ERASED = "*erased:"
"""Sent, with the coverage id, when a redaction erased content: every process forgets what it rendered of it."""
_ERASE = "SELECT erase_post_content($1, $2, $3, $4, $5)"
_GONE = (
    b'{"type":"urn:liveline:problem:post-gone","title":"Post has been redacted","status":410,'
    b'"detail":"the post this request concerned was redacted by law; its content is erased"}'
)
"""What a stored idempotent answer that carried a redacted post becomes."""
"""Sent when a rebuild has swapped the reader tables: every process forgets what it rendered."""

# The head of a coverage's stream, and the time its next event is recorded at: the database's clock, read after the
# coverage lock is held, and never before the head's (so `recorded_at` grows with `version` whatever the writers'
# clocks, and `as_of=<time>` never takes in an event stamped after the time asked). The coverage is $1; a write
# reads it in the statement that reads its coverage and post (`read_model.load_for_write`).
HEAD_COLUMNS = (
    "head.version AS head_version, head.hash AS head_hash, greatest(clock_timestamp(), head.recorded_at) AS head_now"
)
HEAD_JOIN = """
LEFT JOIN LATERAL (
    SELECT version, hash, recorded_at FROM events WHERE coverage_id = $1 ORDER BY version DESC LIMIT 1
) AS head ON true
"""
_HEAD = f"SELECT {HEAD_COLUMNS} FROM (SELECT 1) AS always {HEAD_JOIN}"  # noqa: S608 (constant fragments)
_INSERT = """
INSERT INTO events (coverage_id, version, post_id, type, schema_version, data, metadata, recorded_at,
                    prev_hash, hash, salt, commitment)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING position
"""
# The notification carries only where to look, never the payload; it is sent on commit. With the insert it is one
# round trip (pg_notify is volatile: it runs once for the one row the insert returns).
_INSERT_NOTIFIED = f"WITH appended AS ({_INSERT}) SELECT position, pg_notify($13, $14) FROM appended"  # noqa: S608
_NOTIFY = "SELECT pg_notify($1, $2)"
_COLUMNS = (
    "position, coverage_id, version, post_id, type, schema_version, data, metadata, recorded_at, prev_hash, hash, "
    "salt, commitment"
)
_STREAM = f"SELECT {_COLUMNS} FROM events WHERE coverage_id = $1 AND version <= $2 ORDER BY version"  # noqa: S608 (constant column list)
_COUNT = "SELECT count(*) FROM events"
# A post's own events (index events_post) and, with each pin, when the next pin of the coverage replaced it
# (index events_pins): all a post's history needs, however long the coverage.
_POST_STREAM = f"""
SELECT {_COLUMNS}, CASE WHEN type = 'post.pinned' THEN (
    SELECT min(p.version) FROM events p
    WHERE p.coverage_id = events.coverage_id AND p.type = 'post.pinned' AND p.version > events.version
) END AS pin_replaced_at
FROM events WHERE post_id = $1 AND coverage_id = $2 ORDER BY version
"""  # noqa: S608 (constant column list)


class Head(msgspec.Struct, frozen=True):
    """Where a coverage's stream ends (version 0 and `GENESIS` when it is empty), and the time its next event is
    recorded at."""

    version: int
    hash: str
    now: datetime


def head_of(row: asyncpg.Record) -> Head:
    """The head from a row with `HEAD_COLUMNS`."""
    version = row["head_version"]
    return Head(0, GENESIS, row["head_now"]) if version is None else Head(version, row["head_hash"], row["head_now"])


def head_after(event: RecordedEvent) -> Head:
    """The head once `event` is appended: the next event of the same write is recorded at the same moment."""
    return Head(event.version, event.hash, event.recorded_at)


async def read_head(conn: Connection, coverage_id: str) -> Head:
    row = await conn.fetchrow(_HEAD, coverage_id)
    assert row is not None
    return head_of(row)


async def lock_stream(conn: Connection, coverage_id: str) -> None:
    """Serialise appends to one coverage until the surrounding transaction ends (`locks.COVERAGE_STREAM`)."""
    await locks.coverage_stream(conn, coverage_id)


async def append(
    conn: Connection,
    coverage_id: str,
    post_id: str | None,
    data: EventData,
    metadata: Metadata,
    head: Head | None = None,
) -> RecordedEvent:
    """Append one event to a coverage's stream; the caller holds the stream lock in a transaction, and passes the
    stream's `head` when it has read it since taking the lock."""
    return await append_payload(
        conn, coverage_id, post_id, event_type(data), data.schema_version, payload(data), metadata, head
    )


async def append_payload(
    conn: Connection,
    coverage_id: str,
    post_id: str | None,
    type_: str,
    schema_version: int,
    stored_data: dict[str, Any],
    metadata: Metadata,
    head: Head | None = None,
) -> RecordedEvent:
    """Append a payload as given, in whatever schema version it is written (`append` writes today's)."""
    if head is None:
        head = await read_head(conn, coverage_id)
    version = head.version + 1
    prev_hash = head.hash
    stored_metadata = msgspec.to_builtins(metadata)
    recorded_at = head.now
    salt = new_salt()
    commitment = commit(salt, stored_data)
    hash_ = link(
        prev_hash,
        canonical_event(
            coverage_id=coverage_id,
            version=version,
            post_id=post_id,
            type_=type_,
            schema_version=schema_version,
            data=stored_data,
            metadata=stored_metadata,
            recorded_at=recorded_at,
            commitment=commitment,
        ),
    )
    row = (
        coverage_id,
        version,
        post_id,
        type_,
        schema_version,
        stored_data,
        stored_metadata,
        recorded_at,
        prev_hash,
        hash_,
        salt,
        commitment,
    )
    notice = f"{coverage_id}:{version}"
    if type_ == "post.redacted":
        # Every process forgets what it rendered of the coverage before it hears of the new version.
        position = await conn.fetchval(_INSERT, *row)
        marker = erased_payload(version, stored_data["reason"], recorded_at)
        await conn.execute(_ERASE, coverage_id, post_id, version, marker, _GONE)
        await conn.execute(_NOTIFY, NOTIFY_CHANNEL, f"{ERASED}{coverage_id}")
        await conn.execute(_NOTIFY, NOTIFY_CHANNEL, notice)
    else:
        position = await conn.fetchval(_INSERT_NOTIFIED, *row, NOTIFY_CHANNEL, notice)
    return RecordedEvent(
        position=position,
        coverage_id=coverage_id,
        version=version,
        post_id=post_id,
        type=type_,
        schema_version=schema_version,
        data=decode_payload(type_, schema_version, stored_data),
        metadata=metadata,
        recorded_at=recorded_at,
        prev_hash=prev_hash,
        hash=hash_,
    )


def from_row(row: asyncpg.Record) -> RecordedEvent:
    data: dict[str, Any] = row["data"]
    return RecordedEvent(
        position=row["position"],
        coverage_id=row["coverage_id"],
        version=row["version"],
        post_id=row["post_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=decode_payload(row["type"], row["schema_version"], data),
        metadata=msgspec.convert(row["metadata"], Metadata),
        recorded_at=row["recorded_at"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


async def read_stream(conn: Connection, coverage_id: str, up_to_version: int = 2**31 - 1) -> Sequence[RecordedEvent]:
    """A coverage's events in version order, up to and including `up_to_version`."""
    return [from_row(row) for row in await conn.fetch(_STREAM, coverage_id, up_to_version)]


async def read_post_stream(
    conn: Connection, coverage_id: str, post_id: str
) -> Sequence[tuple[RecordedEvent, int | None]]:
    """One post's events in version order, each pin with the version at which another pin replaced it."""
    return [(from_row(row), row["pin_replaced_at"]) for row in await conn.fetch(_POST_STREAM, post_id, coverage_id)]


async def count(conn: Connection) -> int:
    total = await conn.fetchval(_COUNT)
    assert isinstance(total, int)
    return total


_FEED = f"""
SELECT {_COLUMNS}, xid::text AS xid_text FROM events
WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (xid, position) > ($1::text::xid8, $2)
  AND ($3::text IS NULL OR coverage_id = $3)
  AND ($4::text IS NULL OR type = $4)
ORDER BY xid, position
LIMIT $5
"""  # noqa: S608 (constant column list)


class FeedCursor(msgspec.Struct, frozen=True):
    """Where a reader of the global log stands: the (transaction, position) of the last event it read."""

    xid: int = 0
    position: int = 0


_FEED_REACH = """
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid, coalesce(max(position), 0) AS top
FROM events
"""


async def feed_reaches(conn: Connection, cursor: FeedCursor) -> bool:
    """Whether this database has reached the cursor: a cursor from another database (after an import) or a forged
    one far ahead would otherwise be accepted and silently skip everything up to it."""
    row = await conn.fetchrow(_FEED_REACH)
    assert row is not None
    return bool(cursor.xid < row["next_xid"] and cursor.position <= row["top"])


async def read_feed(
    conn: Connection,
    after: FeedCursor,
    limit: int,
    coverage_id: str | None = None,
    type_: str | None = None,
) -> list[tuple[FeedCursor, asyncpg.Record]]:
    """Events of every coverage in the order they became safely visible.

    Only events of transactions older than every transaction still running are returned (the xid8
    horizon of SPEC §4a), so an event that commits late can never fall behind a reader's cursor: a
    naive `position > N` reader misses such events. The price is that a long-running transaction holds
    the feed back until it ends.
    """
    rows = await conn.fetch(_FEED, str(after.xid), after.position, coverage_id, type_, limit)
    return [(FeedCursor(int(row["xid_text"]), row["position"]), row) for row in rows]


def logged(row: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(
        position=row["position"],
        coverage_id=row["coverage_id"],
        version=row["version"],
        post_id=row["post_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=row["data"],
        metadata=row["metadata"],
        recorded_at=canonical_time(row["recorded_at"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        salt=row.get("salt"),
        commitment=row.get("commitment"),
    )


async def chain_hashes(conn: Connection, coverage_id: str, after_version: int) -> list[tuple[int, str]]:
    """(version, hash) of a coverage's events after a version, in version order: the leaves of its Merkle tree."""
    rows = await conn.fetch(
        "SELECT version, hash FROM events WHERE coverage_id = $1 AND version > $2 ORDER BY version",
        coverage_id,
        after_version,
    )
    return [(row["version"], row["hash"]) for row in rows]


async def each_recorded_in_chain_order(conn: Connection, batch: int = 1_000) -> AsyncIterator[RecordedEvent]:
    """Every event as the fold reads it, coverage by coverage in version order, in constant memory (the caller holds
    the transaction a cursor needs)."""
    async for row in conn.cursor(f"SELECT {_COLUMNS} FROM events ORDER BY coverage_id, version", prefetch=batch):  # noqa: S608
        yield from_row(row)


async def appended_after(conn: Connection, horizon: str, coverages_table: str) -> list[RecordedEvent]:
    """Events of transactions from `horizon` on that a read model (its `coverages_table`) has not folded yet."""
    rows = await conn.fetch(
        f"""SELECT {", ".join("e." + c.strip() for c in _COLUMNS.split(","))}
            FROM events e LEFT JOIN {coverages_table} n ON n.id = e.coverage_id
            WHERE e.xid >= $1::text::xid8 AND e.version > COALESCE(n.version, 0)
            ORDER BY e.coverage_id, e.version""",  # noqa: S608 (a constant table name of ours)
        horizon,
    )
    return [from_row(row) for row in rows]


async def version_at(conn: Connection, coverage_id: str, moment: datetime) -> int | None:
    """The coverage's version at a moment: its newest event recorded by then."""
    found: int | None = await conn.fetchval(
        "SELECT max(version) FROM events WHERE coverage_id = $1 AND recorded_at <= $2", coverage_id, moment
    )
    return found


async def chain_hash(conn: Connection, coverage_id: str, version: int) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT hash FROM events WHERE coverage_id = $1 AND version = $2", coverage_id, version
    )
    return found


async def each_in_chain_order(
    conn: Connection, coverage_id: str | None = None, batch: int = 1_000
) -> AsyncIterator[LoggedEvent]:
    """Every event, coverage by coverage in version order, streamed in constant memory (the caller holds
    the transaction a cursor needs, so what it reads beside this is of the same moment)."""
    query = (
        f"SELECT {_COLUMNS} FROM events WHERE $1::text IS NULL OR coverage_id = $1 "  # noqa: S608
        "ORDER BY coverage_id, version"
    )
    async for row in conn.cursor(query, coverage_id, prefetch=batch):
        yield logged(row)


async def each_in_position_order(
    conn: Connection, coverage_id: str | None = None, batch: int = 1_000
) -> AsyncIterator[LoggedEvent]:
    """Every event in position order (what `export` writes), streamed in constant memory."""
    query = f"SELECT {_COLUMNS} FROM events WHERE $1::text IS NULL OR coverage_id = $1 ORDER BY position"  # noqa: S608
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(query, coverage_id, prefetch=batch):
            yield logged(row)


async def insert_logged(conn: Connection, batch: list[LoggedEvent]) -> int:
    """Bulk-insert exported events as they were, positions included (COPY writes identity columns as given)."""
    if not batch:
        return 0
    await conn.copy_records_to_table(
        "events",
        columns=[
            "position", "coverage_id", "version", "post_id", "type", "schema_version",
            "data", "metadata", "recorded_at", "prev_hash", "hash", "salt", "commitment",
        ],
        records=[
            (
                e.position, e.coverage_id, e.version, e.post_id, e.type, e.schema_version,
                e.data, e.metadata, datetime.fromisoformat(e.recorded_at), e.prev_hash, e.hash, e.salt, e.commitment,
            )
            for e in batch
        ],
    )  # fmt: skip
    return len(batch)


async def advance_positions(conn: Connection) -> None:
    """After an import, new appends continue after the highest imported position."""
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence('events', 'position'), GREATEST((SELECT max(position) FROM events), 1))"
    )
