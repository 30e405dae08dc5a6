"""What front-ends read: the timeline (JSON or JSON-LD), changes by cursor (poll and long-poll), and the
Server-Sent Events stream. None of them holds a database connection while it waits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from msgspec import Struct

from service.api import jsonld, timeline
from service.api.auth import CHALLENGE, authenticate, may
from service.api.caching import PRIVATE, conditional_json, coverage_read, public_cache_control
from service.api.coverages import find_coverage
from service.api.cursors import decode_cursor, decode_page, encode_cursor
from service.api.live import CoverageVersions, SharedReads
from service.api.problems import problems
from service.api.timeline import Order, PageQuery
from service.api.views import ChangesPage, CoverageView, TimelinePage, coverage_view, post_view, tombstone
from service.config import Settings
from service.domain.errors import DomainError, InvalidCursor
from service.domain.state import CoverageState, PostState
from service.projections import read_model
from service.store.pool import DATABASE_FAULTS, Connection, snapshot

log = logging.getLogger("liveline.readers")
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]
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
            # A notification may have come in while the database answered: take the newer of the two.
            known = max(known, versions.known(coverage_id) or 0)
        remaining = end - time.monotonic()
        # Only a version past `since` ends the wait. One behind it means this process has not yet heard of a
        # write a reader already saw (a read can beat its NOTIFY): the notification is on its way.
        if known > since or remaining <= 0 or versions.closing.is_set():
            return known
        await versions.wait(coverage_id, remaining if versions.listening else min(remaining, 1.0))


class ReaderController(Controller):
    path = "/v1/coverages/{coverage_id:str}"
    tags = ["readers"]

    @get(
        "/timeline",
        operation_id="getTimeline",
        responses=problems(401, 403, 404),
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
        as_of: Annotated[
            str | None,
            QueryParameter(
                max_length=64, description="auditors: a coverage version or an RFC 3339 time; the page as it was then"
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
                timeline.live_page, pool, request.app.state.known_posts, settings, coverage_id, query, as_jsonld
            ),
            cache_control=public_cache_control(settings),
            media_type=media_type,
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
            coverage = (await find_coverage(conn, coverage_id)).state
        head = coverage.version
        start = decode_cursor(resume, coverage_id) if resume else head
        if start > head:
            raise InvalidCursor(f"the cursor is ahead of the coverage (version {head})", version=head)
        if coverage.status == "ended" and start == head:
            # Nothing more will come: 204 tells EventSource to stop reconnecting.
            return Response(b"", status_code=204)  # type: ignore[return-value]
        return ServerSentEvent(
            self._events(request, pool, settings, coverage_id, start),
            headers={"Cache-Control": "no-store"},
        )

    @staticmethod
    async def _events(
        request: Request[Any, Any, State], pool: asyncpg.Pool, settings: Settings, coverage_id: str, cursor: int
    ) -> AsyncIterator[ServerSentEventMessage]:
        versions: CoverageVersions = request.app.state.versions
        shared: SharedReads = request.app.state.reads
        sent_pin: object = object()
        sent_gist: CoverageView | None = None
        yield ServerSentEventMessage(data=None, comment="liveline stream", retry=2000)
        while not versions.closing.is_set():
            known = versions.known(coverage_id)
            key = None if known is None else ("stream", coverage_id, cursor, known)
            try:
                batch = await shared.run(key, partial(_read_batch, pool, settings, coverage_id, cursor))
            except DATABASE_FAULTS as exc:
                log.warning("stream of %s: database unavailable (%s); retrying", coverage_id, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            except DomainError as exc:  # the read model no longer knows this point: let the client start over
                log.warning("stream of %s ends: %s", coverage_id, exc.detail)
                return
            cursor = batch.changes.upto
            coverage = batch.changes.coverage
            pin_changed = coverage.pinned_post_id != sent_pin
            coverage_changed = sent_gist is None or batch.gist != sent_gist
            sent_pin, sent_gist = coverage.pinned_post_id, batch.gist
            chunk = batch.chunk(pin_changed, coverage_changed)
            if chunk is not None:
                yield chunk
            if batch.changes.has_more:
                continue
            if coverage.status == "ended":
                return
            try:
                known = await wait_for_change(versions, pool, coverage_id, cursor, settings.stream_keepalive)
            except DATABASE_FAULTS:
                known = cursor
                await asyncio.sleep(1.0)
            if (known is None or known <= cursor) and not versions.closing.is_set():
                yield ServerSentEventMessage(data=None, comment="keep-alive")


class Encoded(ServerSentEventMessage):
    """Bytes encoded once and sent as they are to every stream that needs them."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def encode(self) -> bytes:
        return self.raw


class StreamBatch:
    """What one read gives every stream at a cursor, encoded once. Streams that last sent the same pin and
    coverage get the very same bytes, in one chunk: one send per stream per change, whatever the audience."""

    __slots__ = ("_chunks", "_coverage", "_pinned", "_posts", "changes", "gist", "view")

    def __init__(self, changes: Changes, settings: Settings) -> None:
        coverage, coverage_id = changes.coverage, changes.coverage.id
        self.changes = changes
        self.view = coverage_view(coverage, changes.latest_post_id, settings.poll_interval)
        self.gist = _gist(self.view)
        self._posts = b"".join(
            _message("removed", encode_cursor(coverage_id, post.version), tombstone(post)).encode()
            if post.retracted
            else _message(
                "post", encode_cursor(coverage_id, post.version), post_view(post, coverage.pinned_post_id)
            ).encode()
            for post in changes.posts
        )
        event_id = encode_cursor(coverage_id, changes.upto)
        self._pinned = _message("pinned", event_id, {"post_id": coverage.pinned_post_id}).encode()
        self._coverage = _message("coverage", event_id, self.view).encode()
        self._chunks: dict[tuple[bool, bool], Encoded | None] = {}

    def chunk(self, pin_changed: bool, coverage_changed: bool) -> Encoded | None:
        key = (pin_changed, coverage_changed)
        if key not in self._chunks:
            raw = self._posts + (self._pinned if pin_changed else b"") + (self._coverage if coverage_changed else b"")
            self._chunks[key] = Encoded(raw) if raw else None
        return self._chunks[key]


async def _read_batch(pool: asyncpg.Pool, settings: Settings, coverage_id: str, cursor: int) -> StreamBatch:
    async with snapshot(pool) as conn:
        found = await read_changes(conn, coverage_id, cursor, 100)
    return StreamBatch(found, settings)


def _gist(view: CoverageView) -> CoverageView:
    """What a `coverage` event is about: not the bookkeeping every event moves."""
    return msgspec.structs.replace(view, cursor="", checkpoint="", version=0, updated_at=view.started_at)


def _message(event: str, event_id: str, content: object) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event, id=event_id, data=_encoder.encode(content).decode())


async def _auditor_only(request: Request[Any, Any, State]) -> None:
    """`as_of` is for auditors; the rest of the timeline is public."""
    holder = await authenticate(request)
    if holder is None:
        raise NotAuthorizedException("as_of needs an auditor token", headers=CHALLENGE)
    if not may(holder, ("auditor",)):
        raise PermissionDeniedException("as_of is for auditors")
