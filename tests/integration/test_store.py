"""The event store: append-only at the database level, dense versions, a hash chain that links."""

from __future__ import annotations

import asyncpg
import pytest

from service.domain.chain import commit, GENESIS, canonical_event, link
from tests.support import Api


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'::jsonb",
        "UPDATE events SET recorded_at = now() WHERE version = 1",
        "DELETE FROM events",
        "TRUNCATE events",
    ],
)
async def test_database_refuses_to_change_or_delete_events(api: Api, statement: str) -> None:
    await api.open()
    await api.publish()
    conn = await asyncpg.connect(api.database_url)
    try:
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
    finally:
        await conn.close()


async def test_versions_are_dense_and_each_hash_links_to_the_previous(api: Api) -> None:
    await api.open()
    post = (await api.publish()).json()
    await api.edit(post["id"], title="t")
    await api.open("other")
    conn = await asyncpg.connect(api.database_url)
    await conn.set_type_codec("jsonb", encoder=str, decoder=__import__("json").loads, schema="pg_catalog")
    try:
        rows = await conn.fetch("SELECT * FROM events WHERE coverage_id = 'kherson' ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [1, 2, 3]
    previous = GENESIS
    for row in rows:
        assert row["prev_hash"] == previous
        canonical = canonical_event(
            coverage_id=row["coverage_id"],
            version=row["version"],
            post_id=row["post_id"],
            type_=row["type"],
            schema_version=row["schema_version"],
            data=row["data"],
            metadata=row["metadata"],
            recorded_at=row["recorded_at"],
            commitment=row["commitment"],
        )
        assert row["hash"] == link(previous, canonical)
        assert row["commitment"] == commit(row["salt"], row["data"]), "the hash covers a salted commitment"
        assert row["xid"] is not None
        previous = row["hash"]


async def test_recorded_at_is_the_databases_clock_and_never_runs_backwards(api: Api) -> None:
    """An event stamped an hour ahead (a log imported from a host whose clock ran fast) is followed by events
    stamped no earlier: `recorded_at` grows with `version`, so `as_of=<time>` cannot take in a later event."""
    await api.open()
    conn = await asyncpg.connect(api.database_url)
    try:
        before = await conn.fetchval("SELECT clock_timestamp()")
        await api.publish()
        stamped = await conn.fetchval("SELECT recorded_at FROM events WHERE version = 2")
        after = await conn.fetchval("SELECT clock_timestamp()")
        assert before <= stamped <= after, "taken from the database during the append"
        await conn.execute(
            """INSERT INTO events (coverage_id, version, post_id, type, schema_version, data, metadata, recorded_at,
                                   prev_hash, hash)
               SELECT coverage_id, 3, NULL, 'coverage.updated', 1, '{"title": "ahead"}', metadata,
                      recorded_at + interval '1 hour', hash, repeat('0', 64)
               FROM events WHERE version = 2"""
        )
        ahead = await conn.fetchval("SELECT recorded_at FROM events WHERE version = 3")
        await api.client.patch("/v1/coverages/kherson", json={"title": "next"}, headers=api.auth())
        versions = await conn.fetch("SELECT version, recorded_at FROM events ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == [1, 2, 3, 4]
    assert versions[3]["recorded_at"] >= ahead
    assert [r["recorded_at"] for r in versions] == sorted(r["recorded_at"] for r in versions)
