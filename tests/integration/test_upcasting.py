"""Event versions: a post.published v1 (free-text byline) written by an older Liveline is read in today's
shape (contributors), while its stored bytes stay as they were and its chain still verifies."""

from __future__ import annotations

import asyncpg

from service import audit
from service.domain.events import Metadata
from service.domain.ids import new_post_id
from service.projections.rebuild import rebuild
from service.store import events
from service.store.pool import connect
from tests.support import Api, assert_problem, paragraph


async def stored(database_url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT schema_version, data::text AS data FROM events ORDER BY position")
    finally:
        await conn.close()
    return [(r["schema_version"], r["data"]) for r in rows]


async def write_v1_history(database_url: str) -> tuple[str, str]:
    """What Liveline wrote before contributors existed: bylines as free text, schema_version 1."""
    old, cleared = new_post_id(), new_post_id()
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            await events.lock_stream(conn, "kherson")
            metadata = Metadata(actor="cms-2022")
            body = {"body": paragraph("Over in Moscow…")}
            await events.append_payload(conn, "kherson", old, "post.published", 1, {**body, "byline": "Steve Rosenberg"}, metadata)
            await events.append_payload(conn, "kherson", cleared, "post.published", 1, {**body, "byline": "Wire"}, metadata)
            await events.append_payload(conn, "kherson", cleared, "post.edited", 1, {"byline": None}, metadata)
        await rebuild(conn)
    finally:
        await conn.close()
    return old, cleared


async def test_old_payloads_are_read_in_todays_shape_and_stay_untouched(api: Api) -> None:
    await api.open()
    old, cleared = await write_v1_history(api.database_url)
    before = await stored(api.database_url)
    assert [v for v, _ in before] == [1, 1, 1, 1]

    post = (await api.client.get(f"/v1/coverages/kherson/posts/{old}")).json()
    assert post["contributors"] == [{"name": "Steve Rosenberg"}] and post["byline"] == "Steve Rosenberg"
    other = (await api.client.get(f"/v1/coverages/kherson/posts/{cleared}")).json()
    assert other["contributors"] == [] and other["byline"] is None and other["revision"] == 2

    edited = await api.edit(old, contributors=[{"name": "Steve Rosenberg", "role": "Russia editor"}])
    assert edited.json()["contributors"] == [{"name": "Steve Rosenberg", "role": "Russia editor"}]
    after = await stored(api.database_url)
    assert after[:4] == before, "stored events are never rewritten"
    assert after[4][0] == 2, "new events are written in today's version"

    conn = await connect(api.database_url)
    try:
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()


async def test_byline_shorthand_and_its_conflicts(api: Api) -> None:
    await api.open()
    post = (await api.publish(byline="Jeremy Gahagan")).json()
    assert post["contributors"] == [{"name": "Jeremy Gahagan"}]
    both = assert_problem(await api.publish(byline="A", contributors=[{"name": "B"}]), 400)
    assert both["type"] == "urn:liveline:problem:byline-and-contributors"
    assert_problem(await api.publish(byline=None, contributors=[{"name": "B"}]), 400)  # both keys: the document says not
    assert_problem(await api.publish(contributors=[{"name": "B", "shoe_size": 9}]), 400)
    assert_problem(await api.publish(contributors=[{"name": "<script>x</script>"}]), 422)
