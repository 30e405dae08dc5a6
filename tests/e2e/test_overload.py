"""Overload, against a real server: writes beyond the in-flight limit are shed at once, and while they are,
readers are answered without waiting for renders (the answer rendered just before the coverage moved on, no
staler than a shared cache may serve it), while the fresh answer renders behind."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections import Counter

import httpx
import pytest

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


@pytest.mark.parametrize("tokens_of_the_script", ["its own token", "a made-up token a request"])
def test_a_desk_keeps_publishing_while_a_script_floods(
    admin_dsn: str, template_database: str, tokens_of_the_script: str
) -> None:
    """A runaway script floods the publish route with 16 connections, with its own token or with a made-up one a
    request; meanwhile a desk, which opened the coverage before, publishes once a second with its token. While
    overloaded the process starts only its overload rate of writes a second, shared between the credentials
    writing, every credential not known yet counting as one (api/admission.py), so every one of the desk's posts
    is taken while the script's excess is shed with 503 at once."""
    database_url = fresh_database(admin_dsn, template_database)
    env = environment(DATABASE_URL=database_url, LIVELINE_MAX_WRITES_IN_FLIGHT="2")  # so this client can overload it
    tokens = {
        name: liveline("token", "create", "--name", name, "--role", "editor", env=env).stdout.strip()
        for name in ("script", "desk")
    }
    server = start_server(env)
    try:
        script, desk = asyncio.run(flooded(server.base_url, tokens, made_up=tokens_of_the_script.startswith("a made")))
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert desk == [201] * len(desk), f"the desk was refused while the script flooded: {desk}"
    # The process was overloaded and shed the script. How much of the flood is shed depends on how long the process
    # stays overloaded, which one httpx client cannot hold steady: with made-up tokens it sends about as fast as the
    # server answers 401, and the overload lapsed for part of the flood in some runs here (the 503s were 0.4x to 5x
    # the 401s in the three I printed, 10x and more when it held). The desk's answers above are what the design
    # promises.
    assert script[503] > 0, f"the script was not shed: {script}"


async def flooded(base_url: str, tokens: dict[str, str], made_up: bool) -> tuple[Counter[int], list[int]]:
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    script: Counter[int] = Counter()
    desk: list[int] = []
    limits = httpx.Limits(max_connections=16)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as flood,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        await client.post("/v1/coverages", json={"id": "night", "title": "Night"}, headers=auth["desk"])
        stop = asyncio.Event()

        async def runaway() -> None:
            while not stop.is_set():
                headers = {"Authorization": f"Bearer ll_{secrets.token_urlsafe(32)}"} if made_up else auth["script"]
                try:
                    answer = await flood.post(
                        "/v1/coverages/night/posts", json={"body": paragraph("spam")}, headers=headers
                    )
                except httpx.TransportError:
                    # Once in several runs one of the flood's connections is dropped under it (a fresh-clone run
                    # met it once: a ReadError while the answer's headers were awaited). Shedding a flood may
                    # cost its client a connection; what is asserted here is the desk's answers and the shedding.
                    script[0] += 1
                    continue
                script[answer.status_code] += 1

        # The flood's 16 connections are open before it starts, so its first requests leave together and overlap
        # at the server. Otherwise they can trickle in one at a time: one httpx client sends made-up tokens more
        # slowly than the server answers them 401, and a process never overloaded sheds nothing (one run here).
        await asyncio.gather(*(flood.get("/health") for _ in range(16)))
        floods = [asyncio.create_task(runaway()) for _ in range(16)]
        await asyncio.sleep(1.0)  # the flood is on: the process is overloaded
        for n in range(5):
            answer = await client.post(
                "/v1/coverages/night/posts", json={"body": paragraph(f"desk {n}")}, headers=auth["desk"]
            )
            desk.append(answer.status_code)
            await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*floods)
    return script, desk
