"""Every PostgreSQL advisory lock Liveline takes, in one place: its key, what it serialises, and why.

Keys are (class, id) pairs; the class says which lock, so two kinds can never collide.
"""

from __future__ import annotations

from service.store.pool import Connection

COVERAGE_STREAM = 1
"""(1, hashtext(coverage)), per transaction: appends to one coverage take turns, so its version is dense and
becomes visible in order (the reader cursor is the version). Different coverages append in parallel."""
IDEMPOTENCY_KEY = 2
"""(2, hashtext(actor + key)), per transaction: two requests with one Idempotency-Key wait for each other, so only
the first appends and the second gets its answer."""
READ_MODEL = 3
"""(3, 0), per transaction: every write holds it shared; a rebuild's swap takes it exclusively, so no write
projects into reader tables that are being replaced."""
REBUILD = 4
"""(4, 0), per session: one rebuild at a time."""


async def coverage_stream(conn: Connection, coverage_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", COVERAGE_STREAM, coverage_id)


async def idempotency_key(conn: Connection, actor: str, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", IDEMPOTENCY_KEY, f"{actor}\n{key}")


async def enter_coverage(conn: Connection, coverage_id: str) -> None:
    """What every write takes first: `READ_MODEL` shared (so a rebuild can hold all writes off at once), then its
    coverage's `COVERAGE_STREAM`; in that order, in one round trip (a target list is evaluated in order)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared($1, 0), pg_advisory_xact_lock($2, hashtext($3))",
        READ_MODEL,
        COVERAGE_STREAM,
        coverage_id,
    )


async def hold_writers(conn: Connection) -> None:
    """Wait for the writes in flight and hold new ones off until the transaction ends (a rebuild's swap)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", READ_MODEL)


async def try_rebuild(conn: Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, 0)", REBUILD))


async def end_rebuild(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, 0)", REBUILD)
