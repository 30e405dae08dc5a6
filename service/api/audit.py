"""Auditors: the global event feed in commit-visible order, and verification of every hash chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream
from msgspec import Struct

from service.api.auth import require_role
from service.api.caching import PRIVATE, conditional_json
from service.api.coverages import find_coverage
from service.api.cursors import OPAQUE, decode_feed, encode_feed
from service.api.problems import problems
from service.api.unusable import InvalidCursor
from service.audit import VerifyReport, verify
from service.domain.chain import LoggedEvent
from service.domain.events import EVENT_TYPES
from service.domain.ids import is_coverage_id
from service.store import events
from service.store.events import FeedCursor
from service.store.pool import snapshot

AUDITORS: dict[str, Any] = {"roles": ("auditor",)}
NDJSON = "application/x-ndjson"
_encoder = msgspec.json.Encoder()


class FeedEntry(Struct, frozen=True):
    cursor: str
    event: LoggedEvent


class FeedPage(Struct, frozen=True, kw_only=True):
    events: list[FeedEntry]
    next: str
    """Pass as `after` to continue; the same value comes back while nothing new is visible."""
    has_more: bool


class AuditController(Controller):
    path = "/v1"
    tags = ["auditors"]
    guards = [require_role]
    opt = AUDITORS

    @get(
        "/events",
        operation_id="readEventFeed",
        # The page is documented here, not by the annotation: the handler answers a FeedPage or, for
        # `Accept: application/x-ndjson`, a `Stream`, and a union annotation would drop the page from the document.
        # api/contract.py adds the NDJSON form of the 200 (one FeedEntry a line).
        responses={
            200: ResponseSpec(
                data_container=FeedPage, description="Request fulfilled, document follows", generate_examples=False
            ),
            **problems(401, 403, 422),
        },
        security=[{"bearer": []}],
        summary="The whole event log in commit-visible order (NDJSON stream with Accept: application/x-ndjson)",
    )
    async def feed(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        after: Annotated[
            str | None, QueryParameter(max_length=200, pattern=OPAQUE, description="`next` of a previous page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        coverage_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
        type: Annotated[str | None, QueryParameter(max_length=40, description="an event type")] = None,
    ) -> Response[Any]:
        start = FeedCursor(*decode_feed(after)) if after else FeedCursor()
        if coverage_id is not None and not is_coverage_id(coverage_id):
            coverage_id = "\x01"  # matches nothing, and never reaches SQL as a NUL
        if type is not None and type not in EVENT_TYPES:
            type = "\x01"
        if after is not None:
            async with pool.acquire() as conn:
                if not await events.feed_reaches(conn, start):
                    raise InvalidCursor(
                        "the feed cursor is beyond this database's log (from another database, or made up); "
                        "start again without `after`",
                        cursor=after,
                    )
        if NDJSON in request.headers.get("accept", ""):
            return Stream(
                _ndjson(pool, start, coverage_id, type),
                media_type=NDJSON,
                headers={"Cache-Control": PRIVATE},
            )
        async with snapshot(pool) as conn:
            rows = await events.read_feed(conn, start, limit + 1, coverage_id, type)
        shown = rows[:limit]
        entries = [FeedEntry(encode_feed(c.xid, c.position), events.logged(row)) for c, row in shown]
        last = shown[-1][0] if shown else start
        page = FeedPage(events=entries, next=encode_feed(last.xid, last.position), has_more=len(rows) > limit)
        return conditional_json(request, page, cache_control=PRIVATE)

    @get(
        "/audit/verify",
        operation_id="verifyLog",
        responses=problems(401, 403, 404),
        security=[{"bearer": []}],
        summary="Recompute every hash chain (or one coverage's): ok, counts and heads, or the first break",
    )
    async def verify_log(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
    ) -> Response[VerifyReport]:
        async with pool.acquire() as conn:
            if coverage_id is not None:
                await find_coverage(conn, coverage_id)  # an unknown coverage is a 404, not a clean bill of health
            report = await verify(conn, coverage_id)
        return conditional_json(request, report, cache_control=PRIVATE)


async def _ndjson(
    pool: asyncpg.Pool, start: FeedCursor, coverage_id: str | None, type_: str | None
) -> AsyncIterator[bytes]:
    """Page through the feed up to the visibility horizon, one short query per thousand events."""
    cursor = start
    while True:
        async with pool.acquire() as conn:
            rows = await events.read_feed(conn, cursor, 1000, coverage_id, type_)
        for found, row in rows:
            yield _encoder.encode(FeedEntry(encode_feed(found.xid, found.position), events.logged(row))) + b"\n"
        if len(rows) < 1000:
            return
        cursor = rows[-1][0]
