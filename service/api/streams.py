"""The Server-Sent Events stream of a coverage: post, removed, pinned and coverage events, `id:` a cursor.

After a change every stream of a coverage asks for the same thing at once; one read and one encoding serve
them all (`StreamBatch`, shared through `SharedReads`). Litestar's handler (api/readers.py) and the fast path
(api/fast_path.py) open streams through `opening` and send `messages`; the edge sends the fast path's itself, as
raw ASGI (`send_stream`), because litestar's streaming response holds a request, a task group and two tasks
per open stream, and an audience holds tens of thousands of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

import asyncpg
import msgspec
from litestar.response import ServerSentEventMessage
from litestar.types import Receive, ReceiveMessage, Send
from prometheus_client import Gauge

from service.api.changes import Changes, read_changes, wait_for_change
from service.api.coverages import find_coverage
from service.api.cursors import decode_cursor, encode_cursor
from service.api.live import CoverageVersions, SharedReads
from service.api.unusable import InvalidCursor
from service.api.views import CoverageView, coverage_view, post_view, tombstone
from service.config import Settings
from service.domain.errors import Refusal
from service.store.pool import DATABASE_FAULTS, snapshot

log = logging.getLogger("liveline.readers")
OPEN_STREAMS = Gauge("liveline_open_streams", "Event streams open in this process")
_encoder = msgspec.json.Encoder()

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
"""What litestar's ServerSentEvent sends with our Cache-Control; the edge sends the same (a test compares)."""


async def opening(pool: asyncpg.Pool, coverage_id: str, resume: str | None) -> int | None:
    """The version a stream starts after (`resume`: Last-Event-ID or `since`), or None when the coverage has ended
    and the client holds everything (204 tells EventSource to stop reconnecting)."""
    async with pool.acquire() as conn:
        coverage = (await find_coverage(conn, coverage_id)).state
    head = coverage.version
    start = decode_cursor(resume, coverage_id) if resume else head
    if start > head:
        raise InvalidCursor(f"the cursor is ahead of the coverage (version {head})", version=head)
    if coverage.status == "ended" and start == head:
        return None
    return start


async def messages(
    versions: CoverageVersions,
    shared: SharedReads,
    pool: asyncpg.Pool,
    settings: Settings,
    coverage_id: str,
    cursor: int,
    gone: asyncio.Future[None] | None = None,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """The stream's messages from `cursor` on, until the coverage ends, the process closes or `gone` is done
    (the client left; litestar cancels its streams instead)."""
    OPEN_STREAMS.inc()
    try:
        sent_pin: object = object()
        sent_gist: CoverageView | None = None
        yield ServerSentEventMessage(data=None, comment="liveline stream", retry=2000)
        while not versions.closing.is_set() and not (gone is not None and gone.done()):
            known = versions.known(coverage_id)
            key = None if known is None else ("stream", coverage_id, cursor, known)
            try:
                batch = await shared.run(key, partial(_read_batch, pool, settings, coverage_id, cursor))
            except DATABASE_FAULTS as exc:
                log.warning("stream of %s: database unavailable (%s); retrying", coverage_id, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            except Refusal as exc:  # the read model no longer knows this point: let the client start over
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
                known = await wait_for_change(versions, pool, coverage_id, cursor, settings.stream_keepalive, gone)
            except DATABASE_FAULTS:
                known = cursor
                await asyncio.sleep(1.0)
            if (known is None or known <= cursor) and not versions.closing.is_set():
                yield ServerSentEventMessage(data=None, comment="keep-alive")
    finally:
        OPEN_STREAMS.dec()


async def send_stream(
    send: Send,
    receive: Receive,
    headers: list[tuple[bytes, bytes]],
    messages_until: Callable[[asyncio.Future[None]], AsyncGenerator[ServerSentEventMessage, None]],
) -> None:
    """Send a stream as one ASGI response (`messages_until(gone)`), ending when the stream does or the client
    leaves (`gone` is done then).

    Hand-written rather than litestar's streaming response: that costs a request object, an anyio task group and
    a second task per stream; this costs a callback watching for the client to leave (`_watch_disconnect`).
    """
    gone = _watch_disconnect(receive)
    stream = messages_until(gone)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        headers.clear()  # sent (the server has taken them): not kept, nor the caller's list, for the stream's life
        async with aclosing(stream):
            async for message in stream:
                if gone.done():
                    break
                await send({"type": "http.response.body", "body": message.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


RAW_HEADERS = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS.items()]


def _watch_disconnect(receive: Receive) -> asyncio.Future[None]:
    """A future done when the client leaves (or its connection fails).

    granian's `receive()` hands back a future-like awaitable: a callback on it is all a stream keeps, where a task
    reading the messages would keep a task, its coroutine and a weak reference (about 0.6 KiB for each of tens of
    thousands of streams; tracemalloc, README). Servers whose `receive()` is a coroutine get the task.
    """
    loop = asyncio.get_running_loop()
    pending: Any = receive()
    if not hasattr(pending, "add_done_callback"):
        return loop.create_task(_until_disconnect(receive, pending))
    gone: asyncio.Future[None] = loop.create_future()
    pending.add_done_callback(_Departure(receive, gone))
    return gone


class _Departure:
    """The callback on each `receive()` of a stream: done at `http.disconnect`, otherwise it asks again."""

    __slots__ = ("gone", "receive")

    def __init__(self, receive: Receive, gone: asyncio.Future[None]) -> None:
        self.receive, self.gone = receive, gone

    def __call__(self, done: Any) -> None:
        if self.gone.done():
            return
        try:
            message = done.result()
        except BaseException:  # a failed or cancelled receive: the connection is over
            message = {"type": "http.disconnect"}
        if message["type"] == "http.disconnect":
            self.gone.set_result(None)
        else:  # a request body's part (a GET should have none): read on
            pending: Any = self.receive()
            pending.add_done_callback(self)


async def _until_disconnect(receive: Receive, pending: Awaitable[ReceiveMessage]) -> None:
    message = await pending
    while message["type"] != "http.disconnect":
        message = await receive()


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
