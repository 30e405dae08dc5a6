"""Behaviour across processes: the CLI and a real server on one database, real concurrent HTTP clients."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx

from tests.conftest import fresh_database
from tests.e2e.conftest import METRICS, RunningServer, environment, liveline, start_server


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_token_is_printed_alone_listed_and_revocable(server: RunningServer) -> None:
    made = liveline("token", "create", "--name", "night-desk", "--role", "editor", env=server.env)
    assert made.returncode == 0
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("ll_")
    listed = liveline("token", "list", env=server.env)
    assert "night-desk\teditor" in listed.stdout and token not in listed.stdout
    opened = httpx.post(f"{server.base_url}/v1/coverages", json={"id": "night", "title": "N"}, headers=auth(token))
    assert opened.status_code == 201
    assert liveline("token", "revoke", "night-desk", env=server.env).returncode == 0
    refused = httpx.post(f"{server.base_url}/v1/coverages", json={"id": "night2", "title": "N"}, headers=auth(token))
    assert refused.status_code == 401
    assert liveline("token", "revoke", "night-desk", env=server.env).returncode != 0


async def test_concurrent_duplicate_publishes_over_http_append_one_event(server: RunningServer, editor_token: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "dupes", "title": "D"}, headers=auth(editor_token))
        headers = auth(editor_token, **{"Idempotency-Key": "flash-1"})
        body = {"body": [{"type": "paragraph", "text": "Flash: Kherson"}]}
        answers = await asyncio.gather(*(client.post("/v1/coverages/dupes/posts", json=body, headers=headers) for _ in range(12)))
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
        timeline = (await client.get("/v1/coverages/dupes/timeline")).json()
        assert len(timeline["posts"]) == 1 and timeline["coverage"]["version"] == 2


async def test_concurrent_edits_with_one_if_match_over_http(server: RunningServer, editor_token: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "edits", "title": "E"}, headers=auth(editor_token))
        post = (
            await client.post(
                "/v1/coverages/edits/posts", json={"body": [{"type": "paragraph", "text": "v1"}]}, headers=auth(editor_token)
            )
        ).json()
        url = f"/v1/coverages/edits/posts/{post['id']}"
        answers = await asyncio.gather(
            *(client.patch(url, json={"title": f"desk {i}"}, headers=auth(editor_token, **{"If-Match": '"1"'})) for i in range(6))
        )
        assert sorted(a.status_code for a in answers) == [200] + [412] * 5
        assert (await client.get(url)).json()["revision"] == 2


def test_serve_refuses_an_unmigrated_external_database_unless_told_to_migrate(admin_dsn: str) -> None:
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template=None))
    refused = liveline("serve", "--port", "1", env=env)
    assert refused.returncode != 0
    assert "not migrated" in refused.stderr
    migrated = start_server(env, "--migrate")
    try:
        assert httpx.get(f"{migrated.base_url}/ready").json()["status"] == "ready"
    finally:
        assert migrated.stop() == 0


def test_the_http1_buffer_is_the_setting(server: RunningServer, admin_dsn: str) -> None:
    """serve hands LIVELINE_HTTP1_BUFFER_BYTES to granian: its least (the default, which keeps an open stream's
    memory low) takes a browser's usual head and refuses one that does not fit with a 431; a larger one takes it."""
    usual, oversized = {"Cookie": "c" * 6_000}, {"Cookie": "c" * 12_000}
    assert httpx.get(f"{server.base_url}/health", headers=usual).status_code == 200
    assert httpx.get(f"{server.base_url}/health", headers=oversized).status_code == 431
    roomy = start_server(environment(DATABASE_URL=server.env["DATABASE_URL"], LIVELINE_HTTP1_BUFFER_BYTES="65536"))
    try:
        assert httpx.get(f"{roomy.base_url}/health", headers=oversized).status_code == 200
    finally:
        assert roomy.stop() == 0


def test_health_and_request_ids(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ok"}
    echoed = httpx.get(f"{server.base_url}/health", headers={"X-Request-ID": "cms-42"})
    assert echoed.headers["x-request-id"] == "cms-42"
    mine: list[dict[str, object]] = []
    for _ in range(50):  # the log is written by a thread of its own, a moment after the answer
        logged = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
        mine = [entry for entry in logged if entry.get("request_id") == "cms-42"]
        if mine:
            break
        time.sleep(0.1)
    assert mine and mine[0]["path"] == "/health" and mine[0]["status"] == 200, "JSON access log with the request id"
    replaced = httpx.get(f"{server.base_url}/health", headers={"X-Request-ID": "bad id with spaces"})
    made = replaced.headers["x-request-id"]
    assert made != "bad id with spaces" and re.fullmatch(r"[0-9a-f]{9,}", made), made
    assert httpx.get(f"{server.base_url}/health").headers["x-request-id"] != made, "each request gets its own"


def test_metrics_only_for_the_operators_scraper(server: RunningServer, admin_dsn: str) -> None:
    assert httpx.get(f"{server.base_url}/metrics").status_code == 401
    assert httpx.get(f"{server.base_url}/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
    scraped = httpx.get(f"{server.base_url}/metrics", headers=METRICS)
    assert scraped.status_code == 200 and "liveline_sql_statements_total" in scraped.text
    env = environment(DATABASE_URL=server.env["DATABASE_URL"])
    del env["LIVELINE_METRICS_TOKEN"]
    unset = start_server(env)
    try:
        assert httpx.get(f"{unset.base_url}/metrics", headers=METRICS).status_code == 404, "no token set: not served"
    finally:
        assert unset.stop() == 0


def test_a_revoked_token_is_refused_by_every_process_at_once(server: RunningServer) -> None:
    other = start_server(server.env)
    try:
        token = liveline("token", "create", "--name", "wire", "--role", "editor", "--expires-in", "90d", env=server.env)
        headers = auth(token.stdout.strip())
        for base in (server.base_url, other.base_url):
            assert httpx.post(f"{base}/v1/coverages", json={"id": f"w{base[-5:]}", "title": "W"}, headers=headers).status_code == 201
        listed = liveline("token", "list", env=server.env).stdout
        wire = next(line for line in listed.splitlines() if line.startswith("wire\t"))
        assert "\tactive\t" in wire and "never" not in wire.split("\t")[4], "last use is shown"
        assert liveline("token", "revoke", "wire", env=server.env).returncode == 0
        for base in (server.base_url, other.base_url):
            refused = httpx.post(f"{base}/v1/coverages", json={"id": "after", "title": "A"}, headers=headers)
            assert refused.status_code == 401
        assert liveline("token", "create", "--name", "x", "--role", "editor", "--expires-in", "soon", env=server.env).returncode != 0
    finally:
        assert other.stop() == 0


def test_head_of_a_stream_answers_its_headers_at_once_and_ends(server: RunningServer, editor_token: str) -> None:
    headers = {"Authorization": f"Bearer {editor_token}"}
    httpx.post(f"{server.base_url}/v1/coverages", json={"id": "heads", "title": "H"}, headers=headers)
    started = time.monotonic()
    head = httpx.head(f"{server.base_url}/v1/coverages/heads/stream", timeout=10)
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    assert head.content == b"" and time.monotonic() - started < 5, "a HEAD does not hold the stream open"
    assert httpx.get(f"{server.base_url}/health").status_code == 200
