"""Replay is exact: dropping and rebuilding the reader tables gives byte-identical API output."""

from __future__ import annotations

import asyncio

from service.projections.rebuild import RebuildResult, rebuild, rebuild_online
from service.store.pool import connect
from tests.support import Api, paragraph


async def snapshot(api: Api, post_ids: list[str], etags: bool = True) -> dict[str, bytes]:
    urls = ["/v1/coverages", "/v1/coverages/kherson", "/v1/coverages/second"]
    for params in ("", "?order=oldest", "?key_events=true", "?limit=2"):
        urls.append(f"/v1/coverages/kherson/timeline{params}")
    for pid in post_ids:
        urls += [f"/v1/coverages/kherson/posts/{pid}", f"/v1/coverages/kherson/posts/{pid}/history"]
    out = {}
    for url in urls:
        response = await api.client.get(url)
        tag = response.headers.get("etag", "").encode() if etags else b""
        out[url] = response.status_code.to_bytes(2, "big") + response.content + tag
    return out


async def test_rebuild_leaves_every_answer_byte_identical(api: Api) -> None:
    await api.open()
    await api.open("second", title="Second page")
    ids = [(await api.publish(body=paragraph(f"p{i}"), key_event=i == 1)).json()["id"] for i in range(4)]
    await api.edit(ids[0], title="Edited", note="title added")
    await api.pin(ids[2])
    await api.retract(ids[3], reason="duplicate")
    await api.pin(ids[1])
    await api.client.patch("/v1/coverages/kherson", json={"summary": "All day"}, headers=api.auth())
    await api.client.post("/v1/coverages/second/end", headers=api.auth())
    before = await snapshot(api, ids)
    conn = await connect(api.database_url)
    try:
        replayed = await rebuild(conn)
        rows = await conn.fetchval("SELECT count(*) FROM posts")
    finally:
        await conn.close()
    assert replayed == await api.event_count() == 12
    assert rows == 4
    assert await snapshot(api, ids) == before


async def index_names(database_url: str) -> list[str]:
    conn = await connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('coverages', 'posts') ORDER BY indexname"
        )
    finally:
        await conn.close()
    return [r["indexname"] for r in rows]


async def online(database_url: str, check: bool) -> RebuildResult:
    reader, writer = await connect(database_url), await connect(database_url)
    try:
        return await rebuild_online(reader, writer, check=check)
    finally:
        await reader.close()
        await writer.close()


async def test_online_rebuild_swaps_in_identical_tables_and_check_finds_drift(api: Api) -> None:
    await api.open()
    ids = [(await api.publish(body=paragraph(f"p{i}"))).json()["id"] for i in range(3)]
    await api.edit(ids[1], title="Edited")
    await api.pin(ids[2])
    before = await snapshot(api, ids, etags=False)
    old_tag = (await api.client.get("/v1/coverages/kherson/timeline")).headers["etag"]
    indexes = await index_names(api.database_url)
    assert (await online(api.database_url, check=True)).differences == []

    result = await online(api.database_url, check=False)
    assert result.replayed == 6
    await asyncio.sleep(0.5)  # the swap's notification reaches this process's listener
    assert await snapshot(api, ids, etags=False) == before
    new_tag = (await api.client.get("/v1/coverages/kherson/timeline")).headers["etag"]
    assert new_tag != old_tag, "validators change with the swapped tables, so no cache keeps a pre-rebuild answer"
    assert await index_names(api.database_url) == indexes, "indexes keep the names migrations know"

    conn = await connect(api.database_url)
    try:
        await conn.execute(
            "UPDATE posts SET state = jsonb_set(state, '{title}', '\"forged\"') WHERE id = $1", ids[0]
        )
    finally:
        await conn.close()
    assert (await online(api.database_url, check=True)).differences == [f"post {ids[0]} differs from a replay of its events"]
    await online(api.database_url, check=False)
    assert (await online(api.database_url, check=True)).differences == []
    assert (await api.publish(body=paragraph("after the swap"))).status_code == 201
