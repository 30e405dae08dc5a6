"""An in-process app on a fresh database, with tokens made the way the CLI makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.config import Settings
from service.store import tokens
from service.store.pool import connect
from tests.support import TEST_SIGNING_KEY, Api

UNLIMITED = 10**9


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    # The suite writes far faster than a desk: quotas are tested on their own (test_quotas.py).
    settings = Settings(
        signing_key=TEST_SIGNING_KEY,
        database_url=database_url,
        pool_min_size=1,
        pool_max_size=8,
        write_quota_per_minute=UNLIMITED,
        write_quota_burst=UNLIMITED,
        max_writes_in_flight=1000,  # some tests seed with hundreds of concurrent writes
    )
    app = create_app(settings)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def make_token(database_url: str, name: str, role: tokens.Role) -> str:
    conn = await connect(database_url)
    try:
        return await tokens.create_token(conn, name, role)
    finally:
        await conn.close()


@pytest.fixture
async def editor_token(database_url: str) -> str:
    return await make_token(database_url, "cms", "editor")


@pytest.fixture
async def auditor_token(database_url: str) -> str:
    return await make_token(database_url, "standards-desk", "auditor")


@pytest.fixture
async def api(client: AsyncTestClient, editor_token: str, database_url: str) -> Api:  # type: ignore[type-arg]
    return Api(client, editor_token, database_url)
