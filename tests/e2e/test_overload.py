"""Overload, against a real server: writes beyond the in-flight limit are shed at once, and while they are,
readers are answered without waiting for renders (the answer rendered just before the coverage moved on, no
staler than a shared cache may serve it), while the fresh answer renders behind."""

from __future__ import annotations

import asyncio
import signal

import httpx

from service.store import events
from service.store.pool import connect
from tests.conftest import fresh_database
from tests.e2e.conftest import environment, liveline, start_server
from tests.support import assert_problem, paragraph


def test_while_writes_are_shed_readers_get_the_previous_answer_and_a_fresh_one_renders_behind(
    admin_dsn: str, template_database: str
) -> None:
    database_url = fresh_database(admin_dsn, template_database)
    env = environment(DATABASE_URL=database_url, LIVELINE_MAX_WRITES_IN_FLIGHT="1")
    token = liveline("token", "create", "--name", "desk", "--role", "editor", env=env).stdout.strip()
    server = start_server(env)
    try:
        asyncio.run(overloaded(server.base_url, database_url, {"Authorization": f"Bearer {token}"}))
    finally:
        assert server.stop(signal.SIGTERM) == 0


async def overloaded(base_url: str, database_url: str, desk: dict[str, str]) -> None:
    timeline = "/v1/coverages/night/timeline"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def publish(text: str) -> httpx.Response:
            return await client.post("/v1/coverages/night/posts", json={"body": paragraph(text)}, headers=desk)

        await client.post("/v1/coverages", json={"id": "night", "title": "Night"}, headers=desk)
        first = (await publish("first")).json()["id"]
        assert [p["id"] for p in (await client.get(timeline)).json()["posts"]] == [first]
        second = (await publish("second")).json()["id"]
        fresh = await client.get(timeline)
        assert [p["id"] for p in fresh.json()["posts"]] == [second, first], "not overloaded: seen at once"

        holder = await connect(database_url)
        try:
            async with holder.transaction():
                await events.lock_stream(holder, "night")  # the next write waits, in flight
                third = asyncio.create_task(publish("third"))
                await asyncio.sleep(0.3)
                refused = await publish("refused")
                problem = assert_problem(refused, 503)  # the limit is 1: shed, and the process is overloaded
                assert problem["type"].endswith(":overloaded") and refused.headers["retry-after"] == "1"
        finally:
            await holder.close()
        answered = await third
        assert answered.status_code == 201, answered.text
        third_id = answered.json()["id"]

        stale = await client.get(timeline)
        assert stale.status_code == 200 and stale.headers["etag"] == fresh.headers["etag"]
        assert stale.content == fresh.content, "the answer rendered just before the coverage moved on"
        own = await client.get(timeline, headers=desk)
        assert [p["id"] for p in own.json()["posts"]] == [third_id, second, first], "a desk reads with its token"
        for _ in range(200):  # the fresh answer renders in the background
            now = await client.get(timeline)
            if now.headers["etag"] != fresh.headers["etag"]:
                break
            await asyncio.sleep(0.01)
        assert [p["id"] for p in now.json()["posts"]] == [third_id, second, first]
        await asyncio.sleep(1.1)  # no longer overloaded: a write is seen at once again
        fourth = (await publish("fourth")).json()["id"]
        assert (await client.get(timeline)).json()["posts"][0]["id"] == fourth
