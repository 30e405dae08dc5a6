"""The witness against a real service: it follows the coverages' logs as they grow, and after a database superuser
deletes a coverage's newest events and rebuilds, or rewrites an old event and recomputes the whole hash chain so
that `verify` is clean again, it fails naming the coverage and the size it had witnessed, against the live
service (restarted, so nothing is remembered in memory) and against an export."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

from service.domain.chain import canonical_event, commit, link
from tests.conftest import fresh_database
from tests.e2e.conftest import RunningServer, environment, liveline, start_server
from tests.support import paragraph


def publish(server: RunningServer, token: str, coverage: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        if client.get(f"/v1/coverages/{coverage}").status_code == 404:
            client.post("/v1/coverages", json={"id": coverage, "title": coverage}, headers=headers).raise_for_status()
        for n in range(count):
            client.post(f"/v1/coverages/{coverage}/posts", json={"body": paragraph(f"{coverage} {n}")},
                        headers=headers).raise_for_status()  # fmt: skip


async def delete_newest(dsn: str, coverage: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute(
            "DELETE FROM events WHERE coverage_id = $1 AND version > "
            "(SELECT max(version) FROM events WHERE coverage_id = $1) - $2",
            coverage,
            count,
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def rewrite_with_a_valid_chain(dsn: str, coverage: str, version: int) -> None:
    """Change one event's text and recompute every hash after it, as an insider with the database would."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        rows = await conn.fetch("SELECT * FROM events WHERE coverage_id = $1 ORDER BY version", coverage)
        prev = rows[version - 2]["hash"]
        for row in rows[version - 1 :]:
            data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
            if row["version"] == version:
                data["body"][0]["text"] = "what was never said"
            metadata = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
            recorded_at: datetime = row["recorded_at"]
            commitment = commit(row["salt"], data) if row["salt"] else row["commitment"]
            hash_ = link(prev, canonical_event(
                coverage_id=coverage, version=row["version"], post_id=row["post_id"], type_=row["type"],
                schema_version=row["schema_version"], data=data, metadata=metadata, recorded_at=recorded_at,
                commitment=commitment,
            ))  # fmt: skip
            await conn.execute(
                "UPDATE events SET data = $1::jsonb, prev_hash = $2, hash = $3, commitment = $4 "
                "WHERE coverage_id = $5 AND version = $6",
                json.dumps(data), prev, hash_, commitment, coverage, row["version"],
            )  # fmt: skip
            prev = hash_
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


def test_the_witness_catches_truncation_and_rewriting_that_verify_and_rebuild_do_not(
    admin_dsn: str, template_database: str, tmp_path: Path
) -> None:
    dsn = fresh_database(admin_dsn, template_database)
    env = environment(DATABASE_URL=dsn, LIVELINE_DATA_DIR=str(tmp_path / "data"))
    token = liveline("token", "create", "--name", "desk", "--role", "editor", env=env).stdout.strip()
    state = str(tmp_path / "witness.json")
    server = start_server(env)
    try:
        publish(server, token, "night", 5)
        publish(server, token, "day", 4)
        first = liveline("witness", server.base_url, "--state", state, env=env)
        assert first.returncode == 0, first.stderr
        assert "trusting" in first.stderr
        publish(server, token, "night", 3)
        second = liveline("witness", server.base_url, "--state", state, env=env)
        assert second.returncode == 0, second.stderr
        witnessed = json.loads(Path(state).read_text())["logs"]
        assert sorted((origin.rpartition("/")[2], log["size"]) for origin, log in witnessed.items()) == [
            ("day", 5), ("night", 9)
        ]  # fmt: skip
        kept = tmp_path / "kept-by-a-reader.txt"  # what a reader saved from `coverage.checkpoint`
        link_to = httpx.get(f"{server.base_url}/v1/coverages/night").json()["checkpoint"]
        kept.write_text(httpx.get(f"{server.base_url}{link_to}").text)
        key = httpx.get(f"{server.base_url}/v1/log-key").text.strip()
        export = tmp_path / "honest.ndjson"
        assert liveline("export", "--output", str(export), env=env).returncode == 0
        assert liveline("witness", str(export), "--state", state, env=env).returncode == 0
    finally:
        assert server.stop(signal.SIGTERM) == 0

    asyncio.run(delete_newest(dsn, "night", 2))
    asyncio.run(rewrite_with_a_valid_chain(dsn, "day", 3))
    assert liveline("rebuild", env=env).returncode == 0
    assert liveline("verify", env=env).returncode == 0, "the chains alone look fine"
    server = start_server(env)
    try:
        caught = liveline("witness", server.base_url, "--state", state, env=env)
        assert caught.returncode == 1, caught.stderr
        assert "night at size 9: the log shrank to 7 events" in caught.stderr
        assert "day at size 5: fork" in caught.stderr
        assert json.loads(Path(state).read_text())["logs"] == witnessed, "nothing moves forward after a finding"
        another = liveline("witness", server.base_url, "--state", str(tmp_path / "another.json"), "--key", key,
                           "--checkpoint", str(kept), "--coverage", "night", env=env)  # fmt: skip
        assert another.returncode == 1 and "night at size 9: the log shrank to 7 events" in another.stderr
        export = tmp_path / "tampered.ndjson"
        assert liveline("export", "--output", str(export), env=env).returncode == 0
        offline = liveline("witness", str(export), "--state", state, env=env)
        assert offline.returncode == 1
        assert "night at size 9: the export holds 7 events" in offline.stderr
        assert "day at size 5: the export's log differs from the witnessed one" in offline.stderr
    finally:
        assert server.stop(signal.SIGTERM) == 0
