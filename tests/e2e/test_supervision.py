"""The embedded PostgreSQL is supervised: after a kill -9 of its postmaster, `liveline serve` starts it again
(crash recovery) and answers again within seconds, with no human; readiness reports the outage meanwhile and
streams resume through their cursors."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import environment, liveline, start_server
from tests.support import paragraph, sse_events


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


async def test_a_killed_embedded_postgres_is_restarted_and_service_resumes(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir))
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    server = start_server(env)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            opened = await client.post("/v1/coverages", json={"id": "night", "title": "Night"}, headers=headers)
            cursor = opened.json()["cursor"]
            before = await client.post("/v1/coverages/night/posts", json={"body": paragraph("before")}, headers=headers)
            assert before.status_code == 201
            async with client.stream("GET", "/v1/coverages/night/stream", params={"since": cursor}) as stream:
                events = sse_events(stream)
                seen = [e async for e in _until_post(events, before.json()["id"])]
                assert seen
                killed = postmaster_pid(data_dir)
                os.kill(killed, signal.SIGKILL)
                killed_at = time.monotonic()
                statuses: set[int] = set()
                while True:  # never 500 meanwhile; 200 again within 10 s
                    ready = await client.get("/ready")
                    statuses.add(ready.status_code)
                    if ready.status_code == 200 and postmaster_pid(data_dir) != killed:
                        break
                    assert time.monotonic() - killed_at < 10, statuses
                    await asyncio.sleep(0.2)
                recovered = time.monotonic() - killed_at
                after = None
                while after is None or after.status_code != 201:
                    after = await client.post(
                        "/v1/coverages/night/posts", json={"body": paragraph("after")}, headers=headers
                    )
                    assert after.status_code in (201, 503), after.text
                    assert time.monotonic() - killed_at < 15
                seen = [e async for e in _until_post(events, after.json()["id"], within=10)]
                assert seen, "the open stream delivers what was published after the restart"
            timeline = (await client.get("/v1/coverages/night/timeline")).json()
            assert [p["body"][0]["text"] for p in timeline["posts"]] == ["after", "before"]
        print(f"ready again {recovered:.1f}s after kill -9 of the postmaster; /ready answered {sorted(statuses)}")
        assert statuses <= {200, 503}
    finally:
        stopped = server.stop(signal.SIGTERM)
        print(server.log.read_text()[-20_000:])  # shown by pytest only if the test fails
        assert stopped == 0
    log = server.log.read_text()
    assert "starting it again" in log and "is back" in log


async def _until_post(events: object, post_id: str, within: float = 5) -> object:
    deadline = time.monotonic() + within
    async for event in events:  # type: ignore[attr-defined]
        if event.get("event") == "post" and post_id in event.get("data", ""):
            yield event
            return
        assert time.monotonic() < deadline, "no such post on the stream in time"
