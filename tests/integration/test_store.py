"""The event store: append-only at the database level, dense versions, a hash chain that links."""

from __future__ import annotations

import asyncpg
import pytest

from service.domain.chain import GENESIS, canonical_event, link
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
        )
        assert row["hash"] == link(previous, canonical)
        assert row["xid"] is not None
        previous = row["hash"]
