"""Coverages: list, open, read, update, end, reopen, pin and unpin."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from service.api.auth import EDITORS, require_role
from service.api.caching import conditional_json, coverage_read, encode, public_cache_control
from service.api.cursors import OPAQUE, decode_listing, encode_listing
from service.api.problems import problems
from service.api.views import CoverageList, CoverageView, coverage_view
from service.api.writing import IdempotencyKeyHeader, run
from service.config import Settings
from service.domain import commands
from service.domain.commands import OpenCoverage, PinPost, UpdateCoverage
from service.domain.errors import CoverageNotFound
from service.domain.events import EventData
from service.domain.ids import is_coverage_id
from service.domain.state import CoverageState, PostState
from service.projections import read_model
from service.store.pool import Connection
from service.writes import Answer, Change

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]


def coverage_not_found(coverage_id: str) -> CoverageNotFound:
    return CoverageNotFound(f"no coverage {coverage_id!r}", coverage_id=coverage_id)


async def find_coverage(conn: Connection, coverage_id: str) -> read_model.CoverageRow:
    found = await read_model.find_coverage(conn, coverage_id) if is_coverage_id(coverage_id) else None
    if found is None:
        raise coverage_not_found(coverage_id)
    return found


def _coverage_answer(request: Request[Any, Any, State], status: int) -> Any:
    poll_interval = request.app.state.settings.poll_interval

    async def respond(conn: Connection, coverage: CoverageState | None, _: PostState | None) -> Answer:
        assert coverage is not None
        row = await find_coverage(conn, coverage.id)
        headers = {"Location": f"/v1/coverages/{coverage.id}"} if status == 201 else {}
        return Answer(status, encode(coverage_view(row.state, row.latest_post_id, poll_interval)), headers)

    return respond


async def _coverage_change(
    request: Request[Any, Any, State],
    pool: asyncpg.Pool,
    coverage_id: str,
    decide: Callable[[CoverageState | None], EventData],
    *,
    data: object = None,
    idempotency_key: str | None = None,
) -> Response[CoverageView]:
    """One coverage-wide event (update, end, reopen), answered with the coverage."""
    return await run(
        request,
        pool,
        coverage_id=coverage_id,
        data=data,
        idempotency_key=idempotency_key,
        decide=lambda coverage, _: [Change(None, decide(coverage))],
        respond=_coverage_answer(request, 200),
    )


class CoverageController(Controller):
    """The newsroom's side of coverages: every route needs an editor's token (or an admin's). What anyone may
    read is below it, as plain handlers: litestar 2 cannot give two controllers one path (each brings its own
    OPTIONS handler; fixed in litestar 3), and the guard is this controller's alone."""

    path = "/v1/coverages"
    tags = ["coverages"]
    guards = [require_role]
    security = [{"bearer": []}]
    opt = EDITORS

    @post(
        "/",
        operation_id="openCoverage",
        responses=problems(401, 403, 413, 429, 409, 413, 422),
        summary="Open a coverage (a live page)",
        status_code=201,
    )
    async def open_coverage(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        data: JSONBody[OpenCoverage],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CoverageView]:
        commands.require_slug(data.id)
        return await run(
            request,
            pool,
            coverage_id=data.id,
            data=data,
            idempotency_key=idempotency_key,
            decide=lambda coverage, _: [Change(None, commands.decide_open(coverage, data))],
            respond=_coverage_answer(request, 201),
        )

    @patch(
        "/{coverage_id:str}",
        operation_id="updateCoverage",
        responses=problems(401, 403, 413, 429, 404, 409, 413, 422),
        summary="Change a coverage's title, summary, editors or time zone",
    )
    async def update_coverage(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        data: JSONBody[UpdateCoverage],
    ) -> Response[CoverageView]:
        decide = partial(commands.decide_update, coverage_id=coverage_id, request=data)
        return await _coverage_change(request, pool, coverage_id, decide, data=data)

    @post(
        "/{coverage_id:str}/end",
        operation_id="endCoverage",
        responses=problems(401, 403, 413, 429, 404, 409, 422),
        summary="End a coverage; later writes are refused until it is reopened",
        status_code=200,
    )
    async def end_coverage(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CoverageView]:
        decide = partial(commands.decide_end, coverage_id=coverage_id)
        return await _coverage_change(request, pool, coverage_id, decide, idempotency_key=idempotency_key)

    @post(
        "/{coverage_id:str}/reopen",
        operation_id="reopenCoverage",
        responses=problems(401, 403, 413, 429, 404, 409, 422),
        summary="Reopen an ended coverage",
        status_code=200,
    )
    async def reopen_coverage(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CoverageView]:
        decide = partial(commands.decide_reopen, coverage_id=coverage_id)
        return await _coverage_change(request, pool, coverage_id, decide, idempotency_key=idempotency_key)

    @put(
        "/{coverage_id:str}/pinned",
        operation_id="pinPost",
        responses=problems(401, 403, 404, 409, 413, 422, 429),
        summary="Pin a post as latest (replaces any pinned post)",
    )
    async def pin_post(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        data: JSONBody[PinPost],
    ) -> Response[CoverageView]:
        def decide(coverage: CoverageState | None, post: PostState | None) -> list[Change]:
            return [Change(data.post_id, e) for e in commands.decide_pin(coverage, post, coverage_id, data.post_id)]

        return await run(
            request,
            pool,
            coverage_id=coverage_id,
            post_id=data.post_id,
            decide=decide,
            respond=_coverage_answer(request, 200),
        )

    @delete(
        "/{coverage_id:str}/pinned",
        operation_id="unpinPost",
        responses=problems(401, 403, 413, 429, 404, 409),
        summary="Unpin the pinned post",
        status_code=200,
    )
    async def unpin_post(
        self, request: Request[Any, Any, State], pool: NamedDependency[asyncpg.Pool], coverage_id: FromPath[str]
    ) -> Response[CoverageView]:
        def decide(coverage: CoverageState | None, _: PostState | None) -> list[Change]:
            pinned = coverage.pinned_post_id if coverage else None
            return [Change(pinned, e) for e in commands.decide_unpin(coverage, coverage_id)]

        return await run(request, pool, coverage_id=coverage_id, decide=decide, respond=_coverage_answer(request, 200))


@get(
    "/v1/coverages",
    tags=["coverages"],
    operation_id="listCoverages",
    responses=problems(422),
    summary="List coverages, newest first",
)
async def list_coverages(
    request: Request[Any, Any, State],
    pool: NamedDependency[asyncpg.Pool],
    settings: NamedDependency[Settings],
    limit: Limit = 20,
    before: Annotated[
        str | None, QueryParameter(max_length=300, pattern=OPAQUE, description="`next` of the previous page")
    ] = None,
) -> Response[CoverageList]:
    after = decode_listing(before) if before else None
    async with pool.acquire() as conn:
        rows = await read_model.list_coverages(conn, limit + 1, after)
    page = [coverage_view(row.state, row.latest_post_id, settings.poll_interval) for row in rows[:limit]]
    last = rows[limit - 1].state if len(rows) > limit else None
    next_token = encode_listing(last.started_at, last.id) if last else None
    return conditional_json(
        request,
        CoverageList(coverages=page, next=next_token),
        cache_control=public_cache_control(settings),
    )


@get(
    "/v1/coverages/{coverage_id:str}",
    tags=["coverages"],
    operation_id="getCoverage",
    responses=problems(
        404,
    ),
    summary="A coverage's current state",
)
async def get_coverage(
    request: Request[Any, Any, State],
    pool: NamedDependency[asyncpg.Pool],
    settings: NamedDependency[Settings],
    coverage_id: FromPath[str],
) -> Response[CoverageView]:
    async def render() -> tuple[int, object]:
        async with pool.acquire() as conn:
            row = await find_coverage(conn, coverage_id)
        return row.state.version, coverage_view(row.state, row.latest_post_id, settings.poll_interval)

    return await coverage_read(
        request, coverage_id=coverage_id, render=render, cache_control=public_cache_control(settings)
    )
