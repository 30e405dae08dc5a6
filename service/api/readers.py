"""What front-ends read: the timeline (JSON or JSON-LD), changes by cursor (poll and long-poll), and the
Server-Sent Events stream. None of them holds a database connection while it waits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from msgspec import Struct

from service.api import jsonld
from service.api.caching import coverage_read, public_cache_control
from service.api.coverages import find_coverage
from service.api.cursors import decode_cursor, decode_page, encode_cursor, encode_page
from service.api.live import CoverageVersions
from service.api.problems import problems
from service.api.views import ChangesPage, CoverageView, TimelinePage, coverage_view, post_view, tombstone
from service.config import Settings
from service.domain.errors import InvalidCursor, PostNotFound
from service.domain.ids import is_post_id
from service.domain.state import CoverageState, PostState
from service.projections import read_model
from service.store.pool import Connection, snapshot

log = logging.getLogger("liveline.readers")
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]
Order = Literal["newest", "oldest"]
_encoder = msgspec.json.Encoder()


class Changes(Struct, frozen=True):
    """Posts changed after a cursor, in the order they last changed, and where the answer stops."""

    coverage: CoverageState
    latest_post_id: str | None
    posts: list[PostState]
    has_more: bool
    upto: int


async def read_changes(conn: Connection, coverage_id: str, since: int, limit: int) -> Changes:
    row = await find_coverage(conn, coverage_id)
    head = row.state.version
    if since > head:
        raise InvalidCursor(f"the cursor is ahead of the coverage (version {head})", version=head)
    posts = list(await read_model.changed_posts(conn, coverage_id, since, limit + 1))
    has_more = len(posts) > limit
    posts = posts[:limit]
    # Each event changes at most one post, so a post's version marks exactly where this answer stops.
    upto = posts[-1].version if has_more else head
    return Changes(row.state, row.latest_post_id, posts, has_more, upto)


def changes_page(changes: Changes, poll_interval: int) -> ChangesPage:
    coverage = changes.coverage
    view = coverage_view(coverage, changes.latest_post_id, poll_interval)
    return ChangesPage(
        cursor=encode_cursor(coverage.id, changes.upto),
        has_more=changes.has_more,
        posts=[post_view(p, coverage.pinned_post_id) for p in changes.posts if not p.retracted],
        removed=[tombstone(p) for p in changes.posts if p.retracted],
        pinned_post_id=coverage.pinned_post_id,
        coverage=view,
        poll_interval=0 if changes.has_more else view.poll_interval,
    )


async def wait_for_change(
    versions: CoverageVersions, pool: asyncpg.Pool, coverage_id: str, since: int, seconds: float
) -> int | None:
    """Wait until the coverage moves past `since` or `seconds` pass; returns the version then known.

    Holds no database connection while waiting: notifications wake it. While the LISTEN connection is
    down it checks the database once a second instead, borrowing a connection only for that.
    """
    end = time.monotonic() + seconds
    while True:
        known = versions.known(coverage_id)
        if known is None:
            generation = versions.generation
            async with pool.acquire() as conn:
                known = await read_model.coverage_version(conn, coverage_id)
            if known is None:
                return None
            versions.observe(coverage_id, known, generation)
        remaining = end - time.monotonic()
        if known != since or remaining <= 0 or versions.closing.is_set():
            return known
        await versions.wait(coverage_id, remaining if versions.listening else min(remaining, 1.0))


async def _page_around(
    conn: Connection, coverage_id: str, post_id: str, limit: int, order: Order, key_events: bool
) -> tuple[list[PostState], bool]:
    centre = await read_model.load_post(conn, post_id) if is_post_id(post_id) else None
    if centre is None or centre.coverage_id != coverage_id or centre.retracted:
        raise PostNotFound(f"no visible post {post_id} in coverage {coverage_id!r}", post_id=post_id)
    opposite: Order = "oldest" if order == "newest" else "newest"
    half = (limit - 1) // 2
    earlier = await read_model.timeline_posts(
        conn, coverage_id, limit=half, order=opposite, past=centre.sequence, key_events_only=key_events
    )
    later = await read_model.timeline_posts(
        conn, coverage_id, limit=limit - len(earlier), order=order, past=centre.sequence, key_events_only=key_events
    )
    shown = [*reversed(earlier), centre, *later[: limit - len(earlier) - 1]]
    return shown, len(later) > limit - len(earlier) - 1


class ReaderController(Controller):
    path = "/v1/coverages/{coverage_id:str}"
    tags = ["readers"]

    @get(
        "/timeline",
        operation_id="getTimeline",
        responses=problems(404),
        summary="The reader timeline, a page at a time (JSON-LD LiveBlogPosting with Accept: application/ld+json)",
    )
    async def timeline(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        limit: Limit = 20,
        before: Annotated[str | None, QueryParameter(max_length=200, description="`next` of the previous page")] = None,
        order: FromQuery[Order] = "newest",
        key_events: Annotated[bool, QueryParameter(description="only key events")] = False,
        around: Annotated[
            str | None, QueryParameter(max_length=64, description="a post id: the page centred on that post")
        ] = None,
    ) -> Response[TimelinePage]:
        past = decode_page(before, order) if before else None
        as_jsonld = jsonld.MEDIA_TYPE in request.headers.get("accept", "")

        async def render() -> tuple[int, object]:
            async with snapshot(pool) as conn:
                row = await find_coverage(conn, coverage_id)
                coverage = row.state
                if around is not None:
                    shown, more = await _page_around(conn, coverage_id, around, limit, order, key_events)
                else:
                    posts = await read_model.timeline_posts(
                        conn, coverage_id, limit=limit + 1, order=order, past=past, key_events_only=key_events
                    )
                    shown, more = list(posts[:limit]), len(posts) > limit
                pinned_id = coverage.pinned_post_id
                pinned = await read_model.load_post(conn, pinned_id) if pinned_id else None
            if as_jsonld:
                return coverage.version, jsonld.live_blog_posting(coverage, shown, str(request.base_url).rstrip("/"))
            page = TimelinePage(
                coverage=coverage_view(coverage, row.latest_post_id, settings.poll_interval),
                pinned=post_view(pinned, pinned_id) if pinned else None,
                posts=[post_view(p, pinned_id) for p in shown],
                next=encode_page(order, shown[-1].sequence) if more and shown else None,
                cursor=encode_cursor(coverage.id, coverage.version),
            )
            return coverage.version, page

        return await coverage_read(
            request,
            coverage_id=coverage_id,
            render=render,
            cache_control=public_cache_control(settings),
            media_type=jsonld.MEDIA_TYPE if as_jsonld else "application/json",
        )

    @get(
        "/changes",
        operation_id="getChanges",
        responses=problems(404),
        summary="Everything that changed after a cursor; with `wait`, held until something changes (long poll)",
    )
    async def changes(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        since: Annotated[str, QueryParameter(max_length=200, description="`cursor` of a previous answer")],
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
        responses=problems(404),
        summary="Server-Sent Events of the same changes: post, removed, pinned, coverage; `id:` is a cursor",
    )
    async def stream(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        since: Annotated[str | None, QueryParameter(max_length=200, description="start after this cursor")] = None,
        last_event_id: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", required=False, description="resume after this id")
        ] = None,
    ) -> ServerSentEvent:
        resume = last_event_id or since
        async with pool.acquire() as conn:
            head = (await find_coverage(conn, coverage_id)).state.version
        start = decode_cursor(resume, coverage_id) if resume else head
        if start > head:
            raise InvalidCursor(f"the cursor is ahead of the coverage (version {head})", version=head)
        return ServerSentEvent(
            self._events(request.app.state.versions, pool, settings, coverage_id, start),
            headers={"Cache-Control": "no-store"},
        )

    @staticmethod
    async def _events(
        versions: CoverageVersions, pool: asyncpg.Pool, settings: Settings, coverage_id: str, cursor: int
    ) -> AsyncIterator[ServerSentEventMessage]:
        sent_pin: object = object()
        sent_coverage: CoverageView | None = None
        yield ServerSentEventMessage(data=None, comment="liveline stream", retry=2000)
        while not versions.closing.is_set():
            try:
                async with snapshot(pool) as conn:
                    found = await read_changes(conn, coverage_id, cursor, 100)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("stream of %s: database unavailable (%s); retrying", coverage_id, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            coverage = found.coverage
            for post in found.posts:
                event_id = encode_cursor(coverage_id, post.version)
                if post.retracted:
                    yield _message("removed", event_id, tombstone(post))
                else:
                    yield _message("post", event_id, post_view(post, coverage.pinned_post_id))
            cursor = found.upto
            event_id = encode_cursor(coverage_id, cursor)
            if coverage.pinned_post_id != sent_pin:
                sent_pin = coverage.pinned_post_id
                yield _message("pinned", event_id, {"post_id": coverage.pinned_post_id})
            view = coverage_view(coverage, found.latest_post_id, settings.poll_interval)
            if sent_coverage is None or _gist(view) != _gist(sent_coverage):
                sent_coverage = view
                yield _message("coverage", event_id, view)
            if found.has_more:
                continue
            if coverage.status == "ended":
                return
            try:
                known = await wait_for_change(versions, pool, coverage_id, cursor, settings.stream_keepalive)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                known = cursor
                await asyncio.sleep(1.0)
            if known == cursor and not versions.closing.is_set():
                yield ServerSentEventMessage(data=None, comment="keep-alive")


def _gist(view: CoverageView) -> CoverageView:
    """What a `coverage` event is about: not the bookkeeping every event moves."""
    return msgspec.structs.replace(view, cursor="", version=0, updated_at=view.started_at)


def _message(event: str, event_id: str, content: object) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event, id=event_id, data=_encoder.encode(content).decode())
