"""The audience costs nothing extra: per process, one database read per change is shared by every stream and
long poll at that cursor. Counted with the SQL statement counter of /metrics, on a real server."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.e2e.conftest import METRICS, RunningServer
from tests.support import paragraph, sse_events

COVERAGE = "fanout"


async def statements(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics", headers=METRICS)).text
    found = re.search(r"^liveline_sql_statements_total (\S+)$", text, re.MULTILINE)
    assert found, text[:500]
    return float(found[1])


async def subscriber(client: httpx.AsyncClient, cursor: str, ready: asyncio.Event, seen: list[str], want: int) -> None:
    async with client.stream("GET", f"/v1/coverages/{COVERAGE}/stream", params={"since": cursor}) as response:
        assert response.status_code == 200
        async for event in sse_events(response):
            if "comment" in event:
                ready.set()
            elif event.get("event") == "post":
                seen.append(event["id"])
                if len(seen) == want:
                    return


async def publish_and_count(client: httpx.AsyncClient, token: str, count: int, delivered: list[list[str]]) -> float:
    before = await statements(client)
    for n in range(count):
        answer = await client.post(
            f"/v1/coverages/{COVERAGE}/posts", json={"body": paragraph(f"n{n}")}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 201
        for _ in range(200):  # every subscriber has it before the next publish: reads never overlap two changes
            if all(len(seen) > n for seen in delivered):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    return (await statements(client) - before) / count


async def test_sql_per_publish_does_not_grow_with_subscribers(server: RunningServer, editor_token: str) -> None:
    publishes = 4
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
        opened = await client.post(
            "/v1/coverages", json={"id": COVERAGE, "title": "F"}, headers={"Authorization": f"Bearer {editor_token}"}
        )
        alone = await publish_and_count(client, editor_token, publishes, [])
        costs = {}
        for audience in (20, 200):
            cursor = (await client.get(f"/v1/coverages/{COVERAGE}")).json()["cursor"]
            delivered: list[list[str]] = [[] for _ in range(audience)]
            ready = [asyncio.Event() for _ in range(audience)]
            tasks = [
                asyncio.create_task(subscriber(client, cursor, ready[i], delivered[i], publishes))
                for i in range(audience)
            ]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
            await asyncio.sleep(0.5)
            costs[audience] = await publish_and_count(client, editor_token, publishes, delivered)
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            assert all(len(seen) == publishes == len(set(seen)) for seen in delivered), "every post exactly once"
        assert opened.status_code == 201
    print(f"SQL statements per publish: alone {alone}, 20 streams {costs[20]}, 200 streams {costs[200]}")
    assert costs[200] <= costs[20] + 2, costs
    assert costs[200] <= alone + 12, (alone, costs)
