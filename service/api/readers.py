"""What front-ends read, as litestar routes: the timeline (JSON or JSON-LD; api/timeline.py), changes by cursor
(poll and long poll; api/changes.py) and the Server-Sent Events stream (api/streams.py). None of them holds a
database connection while it waits. The fast path (api/fast_path.py) answers the common timeline pages and
streams itself, through the same functions; these handlers answer everything else and define the OpenAPI
document."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from service.api import jsonld, streams, timeline
from service.api.auth import CHALLENGE, authenticate, may
from service.api.caching import PRIVATE, conditional_json, coverage_read, public_cache_control
from service.api.changes import changes_page, read_changes, wait_for_change
from service.api.cursors import AS_OF, OPAQUE, RESUME, decode_cursor, decode_page
from service.api.problems import problems
from service.api.timeline import Order, PageQuery
from service.api.views import ChangesPage, TimelinePage
from service.config import Settings
from service.store.pool import snapshot

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]


class ReaderController(Controller):
    path = "/v1/coverages/{coverage_id:str}"
    tags = ["readers"]

    @get(
        "/timeline",
        operation_id="getTimeline",
        responses=problems(401, 403, 404, 422),
        summary="The reader timeline, a page at a time (JSON-LD LiveBlogPosting with Accept: application/ld+json)",
    )
    async def timeline(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        limit: Limit = 20,
        before: Annotated[
            str | None, QueryParameter(max_length=200, pattern=OPAQUE, description="`next` of the previous page")
        ] = None,
        order: FromQuery[Order] = "newest",
        key_events: Annotated[bool, QueryParameter(description="only key events")] = False,
        around: Annotated[
            str | None, QueryParameter(max_length=64, description="a post id: the page centred on that post")
        ] = None,
        as_of: Annotated[
            str | None,
            QueryParameter(
                max_length=64,
                pattern=AS_OF,
                description="auditors: a coverage version or an RFC 3339 time; the page as it was then",
            ),
        ] = None,
    ) -> Response[TimelinePage]:
        query = PageQuery(
            limit=limit,
            order=order,
            past=decode_page(before, order) if before else None,
            key_events=key_events,
            around=around,
        )
        as_jsonld = jsonld.MEDIA_TYPE in request.headers.get("accept", "")
        media_type = jsonld.MEDIA_TYPE if as_jsonld else "application/json"
        if as_of is not None:
            await _auditor_only(request)
            content = await timeline.page_as_of(pool, settings, coverage_id, as_of, query, as_jsonld)
            return conditional_json(request, content, cache_control=PRIVATE, media_type=media_type)
        return await coverage_read(
            request,
            coverage_id=coverage_id,
            render=partial(
                timeline.live_page,
                pool,
                request.app.state.statements,
                request.app.state.known_posts,
                request.app.state.encoded_posts,
                settings,
                coverage_id,
                query,
                as_jsonld,
            ),
            cache_control=public_cache_control(settings),
            media_type=media_type,
        )

    @get(
        "/changes",
        operation_id="getChanges",
        responses=problems(404, 422),
        summary="Everything that changed after a cursor; with `wait`, held until something changes (long poll)",
    )
    async def changes(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        since: Annotated[
            str, QueryParameter(max_length=200, pattern=OPAQUE, description="`cursor` of a previous answer")
        ],
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="most posts per answer")] = 100,
        wait: Annotated[int, QueryParameter(ge=0, le=30, description="seconds to hold the request")] = 0,
    ) -> Response[ChangesPage]:
        version = decode_cursor(since, coverage_id)
        if wait:
            await wait_for_change(request.app.state.versions, pool, coverage_id, version, wait)

        async def render() -> tuple[int, object]:
            async with snapshot(pool) as conn:
                found = await read_changes(conn, coverage_id, version, limit)
            return found.coverage.version, changes_page(found, settings.poll_interval)

        return await coverage_read(
            request, coverage_id=coverage_id, render=render, cache_control=public_cache_control(settings)
        )

    @get(
        "/stream",
        operation_id="streamChanges",
        media_type="text/event-stream",
        responses=problems(404, 422),
        summary="Server-Sent Events of the same changes: post, removed, pinned, coverage; `id:` is a cursor",
    )
    async def stream(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        since: Annotated[
            str | None, QueryParameter(max_length=200, pattern=OPAQUE, description="start after this cursor")
        ] = None,
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID",
                required=False,
                max_length=200,
                pattern=RESUME,
                description="resume after this id (empty: as if absent)",
            ),
        ] = None,
    ) -> ServerSentEvent | Response[bytes]:
        start = await streams.opening(pool, coverage_id, last_event_id or since)
        if start is None:
            return Response(b"", status_code=204)
        return streams.EventStream(request.app.state, coverage_id, start)


async def _auditor_only(request: Request[Any, Any, State]) -> None:
    """`as_of` is for auditors; the rest of the timeline is public."""
    holder = await authenticate(request)
    if holder is None:
        raise NotAuthorizedException("as_of needs an auditor token", headers=CHALLENGE)
    if not may(holder, ("auditor",)):
        raise PermissionDeniedException("as_of is for auditors")
