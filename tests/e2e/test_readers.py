"""Readers across real processes: long poll, SSE, wake-ups between replicas, 304s that cost no SQL, a pool of
one, a clean shutdown and a database restart."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import METRICS, RunningServer, environment, liveline, start_server
from tests.support import sse_events


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def paragraph(text: str) -> dict[str, Any]:
    return {"body": [{"type": "paragraph", "text": text}]}


def make_token(env: dict[str, str], name: str = "cms") -> str:
    made = liveline("token", "create", "--name", name, "--role", "editor", env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


async def open_coverage(client: httpx.AsyncClient, token: str, coverage_id: str) -> str:
    opened = await client.post("/v1/coverages", json={"id": coverage_id, "title": coverage_id}, headers=auth(token))
    assert opened.status_code == 201, opened.text
    return opened.json()["cursor"]  # type: ignore[no-any-return]


async def next_event(events: AsyncIterator[dict[str, str]], kind: str, timeout: float) -> dict[str, str]:
    async def find() -> dict[str, str]:
        async for event in events:
            if event.get("event") == kind:
                return event
        raise AssertionError(f"stream ended before a {kind!r} event")

    return await asyncio.wait_for(find(), timeout)


@pytest.fixture(scope="module")
def pair(admin_dsn: str, template_database: str) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    """Two `liveline serve` processes on one database, as two replicas behind a load balancer."""
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database), LIVELINE_STREAM_KEEPALIVE="1")
    first, second = start_server(env), start_server(env)
    yield first, second, make_token(env)
    assert first.stop() == 0 and second.stop() == 0


async def test_long_poll_returns_within_a_second_of_a_publish(pair: tuple[RunningServer, RunningServer, str]) -> None:
    server, _, token = pair
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        cursor = await open_coverage(client, token, "long-poll")
        poll = asyncio.create_task(client.get("/v1/coverages/long-poll/changes", params={"since": cursor, "wait": 20}))
        await asyncio.sleep(1)
        assert not poll.done(), "nothing changed: the request is held"
        published = await client.post("/v1/coverages/long-poll/posts", json=paragraph("now"), headers=auth(token))
        acknowledged = time.monotonic()
        answer = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - acknowledged < 1.0
        assert [p["id"] for p in answer.json()["posts"]] == [published.json()["id"]]


async def test_a_publish_through_one_process_reaches_long_poll_and_stream_on_another(
    pair: tuple[RunningServer, RunningServer, str],
) -> None:
    writer, reader, token = pair
    async with (
        httpx.AsyncClient(base_url=writer.base_url, timeout=30) as cms,
        httpx.AsyncClient(base_url=reader.base_url, timeout=30) as front,
    ):
        cursor = await open_coverage(cms, token, "replicas")
        async with front.stream("GET", "/v1/coverages/replicas/stream", params={"since": cursor}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = sse_events(stream)
            await next_event(events, "coverage", 5)
            poll = asyncio.create_task(front.get("/v1/coverages/replicas/changes", params={"since": cursor, "wait": 20}))
            await asyncio.sleep(0.5)
            published = (await cms.post("/v1/coverages/replicas/posts", json=paragraph("x"), headers=auth(token))).json()
            acknowledged = time.monotonic()
            event = await next_event(events, "post", 5)
            answer = await asyncio.wait_for(poll, 5)
            assert time.monotonic() - acknowledged < 1.0
        assert json.loads(event["data"])["id"] == published["id"]
        assert [p["id"] for p in answer.json()["posts"]] == [published["id"]]


async def test_stream_replays_from_last_event_id_keeps_alive_and_ends_with_the_coverage(
    pair: tuple[RunningServer, RunningServer, str],
) -> None:
    server, _, token = pair
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await open_coverage(client, token, "resume")
        first = (await client.post("/v1/coverages/resume/posts", json=paragraph("1"), headers=auth(token))).json()
        after_first = (await client.get("/v1/coverages/resume")).json()["cursor"]
        second = (await client.post("/v1/coverages/resume/posts", json=paragraph("2"), headers=auth(token))).json()
        await client.post(f"/v1/coverages/resume/posts/{first['id']}/retract", json={"reason": "r"}, headers=auth(token))
        headers = {"Last-Event-ID": after_first}
        seen: list[dict[str, str]] = []
        async with client.stream("GET", "/v1/coverages/resume/stream", headers=headers) as stream:
            events = sse_events(stream)
            async for event in events:
                seen.append(event)
                if event.get("comment") == "keep-alive":
                    break
            named = [e for e in seen if "event" in e]
            assert [e["event"] for e in named] == ["post", "removed", "pinned", "coverage"]
            assert json.loads(named[0]["data"])["id"] == second["id"]
            assert json.loads(named[1]["data"])["post_id"] == first["id"]
            ids = [e["id"] for e in named]
            assert ids == sorted(ids, key=lambda i: int(__import__("base64").urlsafe_b64decode(i + "==").split(b":")[-1]))
            await client.post("/v1/coverages/resume/end", headers=auth(token))
            ending = await next_event(events, "coverage", 5)
            assert json.loads(ending["data"])["status"] == "ended"
            rest = [e async for e in events if "event" in e]
        assert rest == [], "the stream closes once the coverage has ended"


async def test_conditional_polls_run_no_sql(pair: tuple[RunningServer, RunningServer, str]) -> None:
    server, _, token = pair

    async def statements(client: httpx.AsyncClient) -> float:
        text = (await client.get("/metrics", headers=METRICS)).text
        return float(re.search(r"^liveline_sql_statements_total (\S+)$", text, re.M)[1])  # type: ignore[index]

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await open_coverage(client, token, "cheap")
        await client.post("/v1/coverages/cheap/posts", json=paragraph("x"), headers=auth(token))
        first = await client.get("/v1/coverages/cheap/timeline")
        etag = first.headers["etag"]
        cursor = first.json()["cursor"]
        changes = await client.get("/v1/coverages/cheap/changes", params={"since": cursor})
        before = await statements(client)
        for _ in range(100):
            timeline = await client.get("/v1/coverages/cheap/timeline", headers={"If-None-Match": etag})
            polled = await client.get(
                "/v1/coverages/cheap/changes", params={"since": cursor}, headers={"If-None-Match": changes.headers["etag"]}
            )
            assert timeline.status_code == polled.status_code == 304
        assert await statements(client) == before, "a matching conditional poll touches no database"
        await client.post("/v1/coverages/cheap/posts", json=paragraph("y"), headers=auth(token))
        assert (await client.get("/v1/coverages/cheap/timeline", headers={"If-None-Match": etag})).status_code == 200


def test_an_idle_long_poll_holds_no_pooled_connection(admin_dsn: str, template_database: str) -> None:
    env = environment(
        DATABASE_URL=fresh_database(admin_dsn, template_database), LIVELINE_POOL_MIN_SIZE="1", LIVELINE_POOL_MAX_SIZE="1"
    )
    server = start_server(env)
    token = make_token(env)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            cursor = await open_coverage(client, token, "one-connection")
            poll = asyncio.create_task(client.get("/v1/coverages/one-connection/changes", params={"since": cursor, "wait": 15}))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            published = await client.post("/v1/coverages/one-connection/posts", json=paragraph("x"), headers=auth(token))
            assert published.status_code == 201
            assert time.monotonic() - started < 3, "the publish did not wait for the long poll's connection"
            answer = await asyncio.wait_for(poll, 5)
            assert [p["id"] for p in answer.json()["posts"]] == [published.json()["id"]]

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0


def test_shutdown_closes_open_streams_cleanly(admin_dsn: str, template_database: str) -> None:
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database))
    server = start_server(env)
    token = make_token(env)

    async def scenario() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await open_coverage(client, token, "shutdown")
            async with client.stream("GET", "/v1/coverages/shutdown/stream") as stream:
                events = sse_events(stream)
                await next_event(events, "coverage", 5)
                server.process.send_signal(signal.SIGTERM)
                stopped = time.monotonic()
                with pytest.raises((StopAsyncIteration, httpx.RemoteProtocolError)):
                    while True:
                        await asyncio.wait_for(events.__anext__(), 10)
                return time.monotonic() - stopped

    took = asyncio.run(scenario())
    assert server.process.wait(timeout=15) == 0
    assert took < 5


def test_streams_survive_a_database_restart(
    admin_dsn: str, template_database: str, restart_postgres: Callable[[], None]
) -> None:
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database))
    server = start_server(env)
    token = make_token(env)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            cursor = await open_coverage(client, token, "restart")
            before = (await client.post("/v1/coverages/restart/posts", json=paragraph("before"), headers=auth(token))).json()
            received: list[str] = []
            last_id = cursor
            published: dict[str, Any] = {}

            async def follow() -> None:
                nonlocal last_id
                while "id" not in published or published["id"] not in received:
                    try:
                        async with client.stream(
                            "GET", "/v1/coverages/restart/stream", headers={"Last-Event-ID": last_id}
                        ) as stream:
                            async for event in sse_events(stream):
                                if "id" in event:
                                    last_id = event["id"]
                                if event.get("event") == "post":
                                    received.append(json.loads(event["data"])["id"])
                                if "id" in published and published["id"] in received:
                                    return
                    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                        await asyncio.sleep(0.5)  # the stream dropped: resume from the last id, as EventSource does

            follower = asyncio.create_task(follow())
            await asyncio.sleep(1)
            await asyncio.to_thread(restart_postgres)
            answer = await client.post("/v1/coverages/restart/posts", json=paragraph("after"), headers=auth(token))
            assert answer.status_code == 201, "the pool replaces connections the restart closed"
            published.update(answer.json())
            await asyncio.wait_for(follower, 20)
            assert received == [before["id"], published["id"]], "each post once, nothing lost"

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics", headers=METRICS)).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


async def first_events(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, list[dict[str, str]]]:
    """A stream's answer and its events up to the first keep-alive (the pair's keep-alive is 1 s)."""
    seen: list[dict[str, str]] = []
    async with client.stream("GET", url) as stream:
        async for event in sse_events(stream):
            seen.append(event)
            if event.get("comment") == "keep-alive":
                break
    return stream, seen


async def test_a_stream_served_at_the_edge_is_the_stream_litestar_serves(
    pair: tuple[RunningServer, RunningServer, str],
) -> None:
    server, _, token = pair
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        cursor = await open_coverage(client, token, "same-stream")
        posts = [(await client.post("/v1/coverages/same-stream/posts", json=paragraph(f"post {n}"), headers=auth(token))).json()
                 for n in range(3)]  # fmt: skip
        await client.put("/v1/coverages/same-stream/pinned", json={"post_id": posts[1]["id"]}, headers=auth(token))
        await client.post(f"/v1/coverages/same-stream/posts/{posts[0]['id']}/retract", json={"reason": "r"}, headers=auth(token))
        served = await metric(client, "liveline_edge_streams_total")
        edge, edge_events = await first_events(client, f"/v1/coverages/same-stream/stream?since={cursor}")
        assert await metric(client, "liveline_edge_streams_total") == served + 1, "the edge served it"
        routed, routed_events = await first_events(client, f"/v1/coverages/same-stream/stream?%73ince={cursor}")
        assert await metric(client, "liveline_edge_streams_total") == served + 1, "litestar served it"
    assert edge.status_code == routed.status_code == 200
    same = {k: v for k, v in edge.headers.items() if k not in {"date", "x-request-id"}}
    assert same == {k: v for k, v in routed.headers.items() if k not in {"date", "x-request-id"}}
    assert edge.headers["content-type"] == "text/event-stream; charset=utf-8" and edge.headers["cache-control"] == "no-store"
    assert edge_events == routed_events
    assert [e.get("event") for e in edge_events if "event" in e] == ["post", "post", "removed", "pinned", "coverage"]


async def test_a_head_of_a_stream_ends_at_once_and_its_connection_serves_the_next_request(
    pair: tuple[RunningServer, RunningServer, str],
) -> None:
    """HEAD of a stream is litestar's to answer, through the same `send_stream`: its head goes out and the stream
    ends there, while the connection stays open for the next request (rather than running on without a body)."""
    server, _, token = pair
    host, port = server.base_url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await open_coverage(client, token, "head-stream")
        before = await metric(client, "liveline_open_streams")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"HEAD /v1/coverages/head-stream/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
            for _ in range(30):
                if (now := await metric(client, "liveline_open_streams")) == before:
                    break
                await asyncio.sleep(0.1)
            assert now == before, "the stream ended with its head, its connection still open"
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            following = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert following.startswith(b"HTTP/1.1 200"), following
        finally:
            writer.close()


def test_a_stream_whose_client_left_is_let_go_at_once(admin_dsn: str, template_database: str) -> None:
    """Granian swallows writes to a closed connection: without listening for the client's going, an idle stream
    would hold its memory until its next keep-alive, and forever on a coverage that never changes again."""
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database), LIVELINE_STREAM_KEEPALIVE="60")
    server = start_server(env)
    token = make_token(env)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await open_coverage(client, token, "leaving")
            for _ in range(3):
                async with client.stream("GET", "/v1/coverages/leaving/stream") as stream:
                    # Held, not left by a `break`: a generator left behind is closed by the event loop, which
                    # closes the connection, maybe before the count below is read.
                    events = sse_events(stream)
                    assert (await anext(events)).get("comment") == "liveline stream"
                    assert await metric(client, "liveline_open_streams") == 1
                    await events.aclose()
                for _ in range(30):  # the client has closed its connection
                    if await metric(client, "liveline_open_streams") == 0:
                        break
                    await asyncio.sleep(0.1)
                assert await metric(client, "liveline_open_streams") == 0, "let go long before the next keep-alive"
            assert await metric(client, "liveline_edge_streams_total") == 3

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0
