"""The embedded default PostgreSQL: started by `liveline serve`, shared with other commands, stopped on
SIGTERM, and recovered after a kill -9."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from service.embedded import _system_bin, server_major
from tests.e2e.conftest import environment, liveline, start_server


def postgres_running(data_dir: Path) -> bool:
    pgdata = str(data_dir / "postgres")
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and pgdata in " ".join(proc.info["cmdline"] or []):
            return True
    return False


def workers_gone(base_url: str, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base_url}/health", timeout=0.5)
        except httpx.TransportError:
            return True
        time.sleep(0.2)
    return False




def test_serve_runs_on_the_embedded_database_and_stops_it_on_sigterm(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir))
    server = start_server(env)
    try:
        assert postgres_running(data_dir)
        token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env)
        assert token.returncode == 0, token.stderr
        assert postgres_running(data_dir), "a second command must not stop the server serve uses"
        opened = httpx.post(
            f"{server.base_url}/v1/coverages",
            json={"id": "embedded", "title": "E"},
            headers={"Authorization": f"Bearer {token.stdout.strip()}"},
        )
        assert opened.status_code == 201
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert not postgres_running(data_dir)


def test_after_kill_9_the_next_start_recovers_and_keeps_the_data(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_LOG_NAME="night.example")
    del env["LIVELINE_SIGNING_KEY"]  # the log's key is made on first start, in the data folder
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    assert not postgres_running(data_dir), "a one-off command stops the server it started"
    first = start_server(env)
    httpx.post(
        f"{first.base_url}/v1/coverages", json={"id": "survives", "title": "S"}, headers={"Authorization": f"Bearer {token}"}
    ).raise_for_status()
    key = httpx.get(f"{first.base_url}/v1/log-key").text
    assert key.startswith("night.example+")
    assert (data_dir / "log-signing-key").stat().st_mode & 0o777 == 0o600
    first.stop(signal.SIGKILL)
    assert workers_gone(first.base_url), "workers must not outlive a killed `liveline serve`"
    second = start_server(env)
    try:
        assert httpx.get(f"{second.base_url}/v1/coverages/survives").status_code == 200
        assert httpx.get(f"{second.base_url}/v1/log-key").text == key, "the same log, the same key"
    finally:
        assert second.stop(signal.SIGTERM) == 0
    assert not postgres_running(data_dir)


def test_machine_postgresql_serves_when_asked_for(data_dir: Path) -> None:
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))):
        pytest.skip("no PostgreSQL binaries on PATH or under /usr/lib/postgresql on this machine")
    env = environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_EMBEDDED_ENGINE="system")
    made = liveline("token", "create", "--name", "cms", "--role", "editor", env=env)
    assert made.returncode == 0, made.stderr
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert not postgres_running(data_dir), "the command stops the server it started"
    server = start_server(env)
    try:
        listed = httpx.get(f"{server.base_url}/v1/coverages")
        assert listed.status_code == 200 and listed.json()["coverages"] == []
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert not postgres_running(data_dir)


def test_a_folder_of_a_newer_major_is_refused_by_an_older_engine(data_dir: Path) -> None:
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))):
        pytest.skip("no PostgreSQL binaries on PATH or under /usr/lib/postgresql on this machine")
    if int(server_major(_system_bin() / "postgres")) >= 18:
        pytest.skip("the machine's PostgreSQL is not older than the embedded one")
    made = liveline("migrate", env=environment(LIVELINE_DATA_DIR=str(data_dir)))
    assert made.returncode == 0, made.stderr
    older = liveline("token", "list", env=environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_EMBEDDED_ENGINE="system"))
    assert older.returncode != 0
    assert "made by PostgreSQL 18, newer than" in older.stderr and "LIVELINE_EMBEDDED_ENGINE=embedded" in older.stderr
    assert (data_dir / "postgres" / "PG_VERSION").read_text().strip() == "18"
    assert not postgres_running(data_dir)


async def test_the_service_role_may_append_but_never_change_the_log(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir))
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    server = start_server(env)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        opened = httpx.post(f"{server.base_url}/v1/coverages", json={"id": "walls", "title": "W"}, headers=headers)
        assert opened.status_code == 201
        lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
        where = f"@/liveline?host={lines[4]}&port={lines[3]}"
        service = await asyncpg.connect(f"postgresql://liveline_service{where}")
        try:
            for attack in ("UPDATE events SET type = 'x'", "DELETE FROM events", "TRUNCATE events"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await service.execute(attack)
        finally:
            await service.close()
        owner = await asyncpg.connect(f"postgresql://liveline_owner{where}")
        try:
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await owner.execute("UPDATE events SET type = 'x'")  # the second wall: the trigger
        finally:
            await owner.close()
        rebuilt = liveline("rebuild", env=env)
        assert rebuilt.returncode == 0, rebuilt.stderr
        body = {"body": [{"type": "paragraph", "text": "after the rebuild"}]}
        after = httpx.post(f"{server.base_url}/v1/coverages/walls/posts", json=body, headers=headers)
        assert after.status_code == 201, "the rebuilt reader tables are the service's to write"
        admin = liveline("token", "create", "--name", "legal", "--role", "admin", env=env).stdout.strip()
        redacted = httpx.post(
            f"{server.base_url}/v1/coverages/walls/posts/{after.json()['id']}/redact",
            json={"reason": "court order", "legal_reference": "case 1"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert redacted.status_code == 200, "the service role erases through erase_post_content, and only so"
        assert liveline("verify", env=env).returncode == 0
    finally:
        assert server.stop(signal.SIGTERM) == 0
