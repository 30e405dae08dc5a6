"""SPEC §4.1: a client following cursors sees every change exactly once, in order, while many writers commit
concurrently — pollers on `changes` (long poll, small pages) and SSE clients, against two worker processes."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any

import asyncpg
import httpx

from tests.conftest import fresh_database
from tests.e2e.conftest import environment, liveline, start_server
from tests.support import sse_events

COVERAGES = [f"busy-{i}" for i in range(4)]
WRITERS_PER_COVERAGE = 4
POLLERS_PER_COVERAGE = 3
STREAMS_PER_COVERAGE = 2
WRITE_SECONDS = 5.0


def version_of(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor + "==").split(b":")[-1])


def comparable(post: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in post.items() if k != "pinned"}  # derived from pinned_post_id, checked on its own


class Follower:
    """What one client has reconstructed, and the checks that it never saw a change twice or out of order."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}
        self.pinned: str | None = None
        self.delivered: set[tuple[str, int | str]] = set()
        self.revisions: dict[str, int] = {}
        self.versions: list[int] = []

    def post(self, post: dict[str, Any]) -> None:
        key = (post["id"], post["revision"])
        assert key not in self.delivered, f"revision delivered twice: {key}"
        assert post["revision"] > self.revisions.get(post["id"], 0), "a revision arrived after a newer one"
        self.delivered.add(key)
        self.revisions[post["id"]] = post["revision"]
        self.posts[post["id"]] = post

    def removed(self, tombstone: dict[str, Any]) -> None:
        key = (tombstone["post_id"], "removed")
        assert key not in self.delivered, "tombstone delivered twice"
        self.delivered.add(key)
        self.posts.pop(tombstone["post_id"], None)

    def at(self, version: int) -> None:
        assert not self.versions or version >= self.versions[-1], "cursor went backwards"
        self.versions.append(version)


async def write(client: httpx.AsyncClient, token: str, coverage: str, stop: float, rng: random.Random) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    mine: list[str] = []
    done = 0
    while time.monotonic() < stop:
        roll = rng.random()
        if roll < 0.5 or not mine:
            response = await client.post(
                f"/v1/coverages/{coverage}/posts",
                json={"body": [{"type": "paragraph", "text": f"update {rng.random()}"}], "key_event": roll < 0.1},
                headers=headers,
            )
            if response.status_code == 201:
                mine.append(response.json()["id"])
        elif roll < 0.75:
            target = rng.choice(mine)
            response = await client.patch(
                f"/v1/coverages/{coverage}/posts/{target}", json={"title": f"t {rng.random()}"}, headers=headers
            )
        elif roll < 0.87:
            response = await client.put(
                f"/v1/coverages/{coverage}/pinned", json={"post_id": rng.choice(mine)}, headers=headers
            )
        elif roll < 0.95:
            target = mine.pop(rng.randrange(len(mine)))
            response = await client.post(
                f"/v1/coverages/{coverage}/posts/{target}/retract", json={"reason": "test"}, headers=headers
            )
        else:
            response = await client.delete(f"/v1/coverages/{coverage}/pinned", headers=headers)
        assert response.status_code < 500, response.text
        assert response.status_code in {200, 201, 409}, response.text  # 409: another desk retracted it first
        done += 1
    return done


async def poll(client: httpx.AsyncClient, coverage: str, cursor: str, finished: asyncio.Event, final: dict[str, str]) -> Follower:
    follower = Follower()
    while True:
        response = await client.get(f"/v1/coverages/{coverage}/changes", params={"since": cursor, "limit": 7, "wait": 1})
        assert response.status_code == 200, response.text
        page = response.json()
        for post in page["posts"]:
            follower.post(post)
        for tombstone in page["removed"]:
            follower.removed(tombstone)
        follower.pinned = page["pinned_post_id"]
        cursor = page["cursor"]
        follower.at(version_of(cursor))
        if finished.is_set() and not page["has_more"] and cursor == final[coverage]:
            return follower


async def stream(client: httpx.AsyncClient, coverage: str, cursor: str, finished: asyncio.Event, final: dict[str, str]) -> Follower:
    follower = Follower()
    async with client.stream("GET", f"/v1/coverages/{coverage}/stream", params={"since": cursor}) as response:
        async for event in sse_events(response):
            kind = event.get("event")
            if kind is not None:
                data = json.loads(event["data"])
                if kind == "post":
                    follower.post(data)
                elif kind == "removed":
                    follower.removed(data)
                elif kind == "pinned":
                    follower.pinned = data["post_id"]
                follower.at(version_of(event["id"]))
            # keep-alive comments come every second here, so an idle stream still gets to this check
            if finished.is_set() and follower.versions and follower.versions[-1] >= version_of(final[coverage]):
                return follower
    raise AssertionError("stream ended early")


async def final_timeline(client: httpx.AsyncClient, coverage: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    posts: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = (await client.get(f"/v1/coverages/{coverage}/timeline", params=params)).json()
        posts.update({p["id"]: p for p in page["posts"]})
        if page["next"] is None:
            return posts, page["coverage"]["pinned_post_id"]
        params["before"] = page["next"]


def test_every_follower_sees_every_change_once_in_order(admin_dsn: str, template_database: str) -> None:
    env = environment(
        DATABASE_URL=fresh_database(admin_dsn, template_database), LIVELINE_POOL_MAX_SIZE="12", LIVELINE_STREAM_KEEPALIVE="1"
    )
    server = start_server(env, "--workers", "2")
    token = liveline("token", "create", "--name", "desk", "--role", "editor", env=env).stdout.strip()

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
            starts = {}
            for coverage in COVERAGES:
                opened = await client.post(
                    "/v1/coverages", json={"id": coverage, "title": coverage}, headers={"Authorization": f"Bearer {token}"}
                )
                starts[coverage] = opened.json()["cursor"]
            finished = asyncio.Event()
            final: dict[str, str] = {}
            pollers = {c: [asyncio.create_task(poll(client, c, starts[c], finished, final)) for _ in range(POLLERS_PER_COVERAGE)] for c in COVERAGES}
            streams = {c: [asyncio.create_task(stream(client, c, starts[c], finished, final)) for _ in range(STREAMS_PER_COVERAGE)] for c in COVERAGES}
            stop = time.monotonic() + WRITE_SECONDS
            rng = random.Random(20221110)
            writes = await asyncio.gather(
                *(write(client, token, c, stop, random.Random(rng.random())) for c in COVERAGES for _ in range(WRITERS_PER_COVERAGE))
            )
            for coverage in COVERAGES:
                final[coverage] = (await client.get(f"/v1/coverages/{coverage}")).json()["cursor"]
            finished.set()
            print(f"{sum(writes)} writes by {len(writes)} writers; final versions {[version_of(final[c]) for c in COVERAGES]}")
            for coverage in COVERAGES:
                expected_posts, expected_pin = await final_timeline(client, coverage)
                assert len(expected_posts) > 5
                followers = await asyncio.wait_for(asyncio.gather(*pollers[coverage], *streams[coverage]), 60)
                for follower in followers:
                    assert {k: comparable(v) for k, v in follower.posts.items()} == {
                        k: comparable(v) for k, v in expected_posts.items()
                    }
                    assert follower.pinned == expected_pin

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0


def test_global_feed_follower_sees_every_event_once_where_a_naive_reader_can_skip(
    admin_dsn: str, template_database: str
) -> None:
    database_url = fresh_database(admin_dsn, template_database)
    env = environment(DATABASE_URL=database_url, LIVELINE_POOL_MAX_SIZE="12")
    server = start_server(env, "--workers", "2")
    editor = liveline("token", "create", "--name", "desk", "--role", "editor", env=env).stdout.strip()
    auditor = liveline("token", "create", "--name", "audit", "--role", "auditor", env=env).stdout.strip()
    coverages = [f"feed-{i}" for i in range(8)]

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
            for coverage in coverages:
                await client.post("/v1/coverages", json={"id": coverage, "title": coverage}, headers={"Authorization": f"Bearer {editor}"})
            finished = asyncio.Event()
            feed_positions: list[int] = []
            naive_positions: list[int] = []

            async def follow_feed() -> None:
                after: str | None = None
                idle_after_finish = 0
                while idle_after_finish < 3:
                    params = {"limit": 500, **({"after": after} if after else {})}
                    page = (await client.get("/v1/events", params=params, headers={"Authorization": f"Bearer {auditor}"})).json()
                    feed_positions.extend(entry["event"]["position"] for entry in page["events"])
                    after = page["next"]
                    if finished.is_set() and not page["events"]:
                        idle_after_finish += 1
                    await asyncio.sleep(0.01)

            async def follow_naively() -> None:
                conn = await asyncpg.connect(database_url)
                cursor = 0
                try:
                    while not finished.is_set():
                        rows = await conn.fetch("SELECT position FROM events WHERE position > $1 ORDER BY position", cursor)
                        naive_positions.extend(r["position"] for r in rows)
                        cursor = rows[-1]["position"] if rows else cursor
                    rows = await conn.fetch("SELECT position FROM events WHERE position > $1 ORDER BY position", cursor)
                    naive_positions.extend(r["position"] for r in rows)
                finally:
                    await conn.close()

            followers = [asyncio.create_task(follow_feed()), asyncio.create_task(follow_naively())]
            stop = time.monotonic() + WRITE_SECONDS
            rng = random.Random(7)
            await asyncio.gather(*(write(client, editor, c, stop, random.Random(rng.random())) for c in coverages for _ in range(2)))
            finished.set()
            await asyncio.wait_for(asyncio.gather(*followers), 60)

            conn = await asyncpg.connect(database_url)
            try:
                everything = [r["position"] for r in await conn.fetch("SELECT position FROM events ORDER BY position")]
            finally:
                await conn.close()
            missed_naively = len(set(everything) - set(naive_positions))
            print(f"{len(everything)} events; the feed follower missed 0, a naive position reader missed {missed_naively}")
            assert sorted(feed_positions) == everything, "every event exactly once"
            assert len(feed_positions) == len(set(feed_positions))

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0
