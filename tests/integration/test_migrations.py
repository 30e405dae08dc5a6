"""Migrations: upgrade, downgrade and upgrade again on a real database; the service refuses an unmigrated one."""

from __future__ import annotations

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.support import TEST_SIGNING_KEY
from service.app import NotMigrated, create_app
from service.config import Settings
from service.store import schema
from tests.conftest import fresh_database


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


def test_upgrade_downgrade_upgrade(admin_dsn: str) -> None:
    import asyncio

    dsn = fresh_database(admin_dsn, template=None)
    schema.upgrade(dsn)
    assert {"events", "coverages", "posts", "api_tokens", "idempotency_records"} <= asyncio.run(tables(dsn))
    schema.downgrade(dsn, "base")
    assert asyncio.run(tables(dsn)) == {"alembic_version"}
    schema.upgrade(dsn)
    assert "events" in asyncio.run(tables(dsn))


async def test_service_refuses_an_unmigrated_database(admin_dsn: str) -> None:
    dsn = await __import__("asyncio").to_thread(fresh_database, admin_dsn, None)
    app = create_app(Settings(signing_key=TEST_SIGNING_KEY, database_url=dsn))
    with pytest.raises(BaseException) as raised:
        async with AsyncTestClient(app=app):
            pass
    assert any(isinstance(e, NotMigrated) for e in leaves(raised.value))


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]
