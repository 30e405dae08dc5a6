"""Per-token write quotas: past the burst, a token's writes are 429 with Retry-After; other tokens and reads
are not affected, and nothing refused is written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.config import Settings
from tests.integration.conftest import make_token
from tests.support import TEST_SIGNING_KEY, Api, assert_problem, paragraph


@pytest.fixture
async def strict(database_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    settings = Settings(signing_key=TEST_SIGNING_KEY, database_url=database_url, write_quota_per_minute=6, write_quota_burst=3)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def test_a_token_over_its_quota_is_429_and_others_write_on(strict: AsyncTestClient, database_url: str) -> None:  # type: ignore[type-arg]
    wire = Api(strict, await make_token(database_url, "wire-feed", "editor"), database_url)
    desk = Api(strict, await make_token(database_url, "desk", "editor"), database_url)
    assert (await wire.open()).status_code == 201
    assert [(await wire.publish(body=paragraph(f"{n}"))).status_code for n in range(2)] == [201, 201]
    before = await wire.event_count()
    refused = await wire.publish(body=paragraph("one too many"))
    problem = assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) == 10, "6 a minute: the next write is 10 s away"
    assert "wire-feed" in problem["detail"]
    assert await wire.event_count() == before
    assert (await desk.publish(body=paragraph("the desk writes on"))).status_code == 201
    assert (await strict.get("/v1/coverages/kherson/timeline")).status_code == 200


async def test_writes_beyond_the_in_flight_limit_are_shed_at_once(database_url: str) -> None:
    settings = Settings(signing_key=TEST_SIGNING_KEY, database_url=database_url, max_writes_in_flight=0)
    async with AsyncTestClient(app=create_app(settings)) as client:
        api = Api(client, await make_token(database_url, "desk", "editor"), database_url)
        refused = await api.open()
        problem = assert_problem(refused, 503)
        assert refused.headers["retry-after"] == "1" and problem["type"].endswith(":overloaded")
        assert await api.event_count() == 0
        assert (await client.get("/v1/coverages")).status_code == 200, "reads are not shed"
