"""`liveline rebuild` while the service serves: reads and writes go on, nothing is lost, `--check` agrees."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import fresh_database
from tests.e2e.conftest import LIVELINE, environment, liveline, start_server


def test_reads_and_writes_go_on_during_a_rebuild(admin_dsn: str, template_database: str) -> None:
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database))
    server = start_server(env)
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await client.post("/v1/coverages", json={"id": "busy", "title": "Busy"}, headers=headers)
            seeded = await asyncio.gather(
                *(
                    client.post("/v1/coverages/busy/posts", json={"body": [{"type": "paragraph", "text": f"{i}"}]}, headers=headers)
                    for i in range(400)
                )
            )
            assert {r.status_code for r in seeded} == {201}
            rebuilding = await asyncio.create_subprocess_exec(
                *LIVELINE, "rebuild", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            statuses: list[int] = []
            published: list[str] = []

            async def read() -> None:
                while rebuilding.returncode is None:
                    for url in ("/v1/coverages/busy/timeline", "/v1/coverages/busy", f"/v1/coverages/busy/posts/{seeded[0].json()['id']}"):
                        statuses.append((await client.get(url)).status_code)

            async def write() -> None:
                while rebuilding.returncode is None:
                    answer = await client.post("/v1/coverages/busy/posts", json={"body": [{"type": "paragraph", "text": "live"}]}, headers=headers)
                    statuses.append(answer.status_code)
                    published.append(answer.json()["id"])

            readers = [asyncio.create_task(read()) for _ in range(3)] + [asyncio.create_task(write())]
            _, stderr = await rebuilding.communicate()
            await asyncio.gather(*readers)
            assert rebuilding.returncode == 0, stderr.decode()
            assert "events/s" in stderr.decode() and "swapped in" in stderr.decode()
            assert len(statuses) > 20 and set(statuses) <= {200, 201}, sorted(set(statuses))
            assert published, "writes went on during the rebuild"
            timeline = (await client.get("/v1/coverages/busy/timeline", params={"limit": 5})).json()
            assert timeline["coverage"]["post_count"] == 400 + len(published)
            assert timeline["posts"][0]["id"] == published[-1]

    try:
        asyncio.run(scenario())
        checked = liveline("rebuild", "--check", env=env)
        assert checked.returncode == 0, checked.stderr
        assert "matches the log" in checked.stderr
    finally:
        assert server.stop() == 0
