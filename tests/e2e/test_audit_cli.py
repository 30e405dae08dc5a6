"""The auditor's commands as an operator runs them: verify, export, import into a fresh database."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import fresh_database
from tests.e2e.conftest import RunningServer, environment, liveline


async def tamper(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute("UPDATE events SET data = '{\"title\": \"rewritten\"}' WHERE version = 1 AND coverage_id = 'cli'")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


def test_verify_export_import_round_trip(server: RunningServer, editor_token: str, admin_dsn: str, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {editor_token}"}
    httpx.post(f"{server.base_url}/v1/coverages", json={"id": "cli", "title": "CLI"}, headers=headers).raise_for_status()
    for text in ("one", "two"):
        httpx.post(
            f"{server.base_url}/v1/coverages/cli/posts", json={"body": [{"type": "paragraph", "text": text}]}, headers=headers
        ).raise_for_status()

    verified = liveline("verify", env=server.env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    one = json.loads(liveline("verify", "--coverage", "cli", env=server.env).stdout)
    assert one["events"] == 3 and one["head"]

    exported = tmp_path / "log.ndjson"
    assert liveline("export", "--output", str(exported), env=server.env).returncode == 0
    lines = exported.read_bytes().splitlines()
    assert len(lines) >= 3 and all(json.loads(line)["hash"] for line in lines)

    elsewhere = environment(DATABASE_URL=fresh_database(admin_dsn, None))
    assert liveline("migrate", env=elsewhere).returncode == 0
    imported = liveline("import", str(exported), env=elsewhere)
    assert imported.returncode == 0, imported.stderr
    again = tmp_path / "again.ndjson"
    assert liveline("export", "--output", str(again), env=elsewhere).returncode == 0
    assert again.read_bytes() == exported.read_bytes()
    refused = liveline("import", str(exported), env=elsewhere)
    assert refused.returncode != 0 and "empty store" in refused.stderr

    import asyncio

    asyncio.run(tamper(elsewhere["DATABASE_URL"]))
    broken = liveline("verify", env=elsewhere)
    assert broken.returncode == 1
    failure = json.loads(broken.stdout)["failure"]
    assert failure["coverage_id"] == "cli" and failure["version"] == 1
