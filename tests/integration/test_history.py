"""A post's history reads only that post's events: the same statements and rows in a 10-event coverage as in a
long one, and the same answer a replay of the whole coverage gives."""

from __future__ import annotations

import asyncpg

from service.api.metrics import SQL_STATEMENTS
from tests.support import Api, paragraph


def statements() -> float:
    return SQL_STATEMENTS.value()


async def history_cost(api: Api, coverage_id: str, post_id: str) -> tuple[dict[str, object], float]:
    before = statements()
    answer = await api.client.get(f"/v1/coverages/{coverage_id}/posts/{post_id}/history")
    assert answer.status_code == 200, answer.text
    return answer.json(), statements() - before


async def rows_read_for(database_url: str, coverage_id: str, post_id: str) -> int:
    """Rows the history query touches, from PostgreSQL's own plan (EXPLAIN ANALYZE), not from wall time."""
    conn = await asyncpg.connect(database_url)
    try:
        from service.store.events import _POST_STREAM

        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {_POST_STREAM}", post_id, coverage_id)
    finally:
        await conn.close()

    def rows(node: dict[str, object]) -> int:
        own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))  # type: ignore[call-overload]
        return own + sum(rows(child) for child in node.get("Plans", []))  # type: ignore[attr-defined]

    import json

    return rows(json.loads(plan)[0]["Plan"])


async def test_history_costs_the_post_not_the_coverage(api: Api) -> None:
    for coverage_id, others in (("small", 3), ("long", 300)):
        await api.open(coverage_id)
        target = (await api.publish(coverage_id, body=paragraph("the post"))).json()["id"]
        await api.pin(target, coverage_id)
        for n in range(others):
            other = (await api.publish(coverage_id, body=paragraph(f"other {n}"))).json()["id"]
            if n % 50 == 0:
                await api.pin(other, coverage_id)  # takes the pin from the post: its history must show it
                await api.edit(target, coverage_id, title=f"edit {n}")
                await api.pin(target, coverage_id)
        await api.edit(target, coverage_id, title="last")
    small, long = {}, {}
    for coverage_id, into in (("small", small), ("long", long)):
        post_id = (await api.timeline(coverage_id, limit=100, order="oldest")).json()["posts"][0]["id"]
        answer, cost = await history_cost(api, coverage_id, post_id)
        into.update(answer=answer, cost=cost, rows=await rows_read_for(api.database_url, coverage_id, post_id))
    long_entries = long["answer"]["entries"]  # type: ignore[index]
    assert [e["post"]["pinned"] for e in long_entries][-3:] == [False, True, True]
    assert small["cost"] == long["cost"], "the same statements whatever the coverage's length"
    assert long["rows"] <= 4 * len(long_entries), (long["rows"], len(long_entries))
