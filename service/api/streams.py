"""The Server-Sent Events stream of a coverage: post, removed, pinned and coverage events, `id:` a cursor.

After a change every stream of a coverage asks for the same thing at once; one read and one encoding serve
them all (`StreamBatch`, shared through `SharedReads`). Litestar's handler (api/readers.py) and the fast path
(api/fast_path.py) open streams through `opening`; both send them with `send_stream`, as raw ASGI, because an
audience holds tens of thousands of them at once and what each holds is what the process can afford.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from functools import partial
from typing import Any

import asyncpg
import msgspec
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse
from litestar.types import Receive, ReceiveMessage, Scope, Send
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
"""A stream's headers, whichever path opened it: those litestar's ServerSentEvent sends, with no cache keeping it."""
RAW_HEADERS = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS.items()]


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


class Client:
    """Whether a stream's client is still there, and the wait it would end by leaving.

    granian's `receive()` hands back a future-like awaitable: a callback on it (this object) is all a stream keeps,
    where a task reading the messages would keep a task, its coroutine and a weak reference (about 0.6 KiB for each
    of tens of thousands of streams; tracemalloc, README). Servers whose `receive()` is a coroutine (the test
    client, HEAD through litestar) get the task.
    """

    __slots__ = ("_receive", "_task", "left", "waiter")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self.left = False
        self.waiter: asyncio.Future[None] | None = None
        """The stream's wait for a change, while it waits: ended at once when the client leaves."""
        pending: Any = receive()
        if hasattr(pending, "add_done_callback"):
            pending.add_done_callback(self)
        else:
            self._task = asyncio.get_running_loop().create_task(self._until_disconnect(pending))

    def __call__(self, done: Any) -> None:
        if self.left:
            return
        try:
            message = done.result()
        except BaseException:  # a failed or cancelled receive: the connection is over
            message = {"type": "http.disconnect"}
        if message["type"] == "http.disconnect":
            self.leave()
        else:  # a request body's part (a GET should have none): read on
            pending: Any = self._receive()
            pending.add_done_callback(self)

    def leave(self) -> None:
        self.left = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self._task is not None:
            self._task.cancel()

    async def _until_disconnect(self, pending: Awaitable[ReceiveMessage]) -> None:
        message = await pending
        while message["type"] != "http.disconnect":
            message = await self._receive()
        self._task = None
        self.leave()


async def send_stream(
    send: Send,
    receive: Receive,
    headers: list[tuple[bytes, bytes]],
    state: State,
    coverage_id: str,
    cursor: int,
    request_id: str | None,
) -> None:
    """The stream from `cursor` on as one raw ASGI answer (`headers` are its own), until the coverage ends, the
    process closes or the client leaves. `state` is the app's: its versions, shared reads, pool and settings.
    `request_id` goes in the stream's own log lines (not set as the context's: a context of its own per stream
    costs 0.2 KiB, and the reads it shares are no one stream's).

    One coroutine holds an open stream, waiting in `wait_for_change`: no generator, no streaming response
    (litestar's costs a request object, an anyio task group and a second task per stream), no task watching the
    client (`Client`). An audience is tens of thousands of these, and each frame of each is memory it keeps.
    """
    versions: CoverageVersions = state.versions
    shared: SharedReads = state.reads
    pool: asyncpg.Pool = state.pool
    settings: Settings = state.settings
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    headers.clear()  # sent (the server has taken them): not kept, nor the caller's list, for the stream's life
    client = Client(receive)  # after the start: a HEAD's receive (api/edge.py) tells the answer is over from then
    OPEN_STREAMS.inc()
    try:
        await send({"type": "http.response.body", "body": HELLO, "more_body": True})
        sent_pin: object = _NOTHING
        sent_gist: CoverageView | None = None
        while not versions.closing.is_set() and not client.left:
            known = versions.known(coverage_id)
            try:
                batch = await shared.run(
                    None if known is None else ("stream", coverage_id, cursor, known),
                    partial(_read_batch, pool, settings, coverage_id, cursor),
                )
            except DATABASE_FAULTS as exc:
                log.warning(
                    "stream of %s: database unavailable (%s); retrying",
                    coverage_id,
                    type(exc).__name__,
                    extra={"request_id": request_id},
                )
                await asyncio.sleep(1.0)
                continue
            except Refusal as exc:  # the read model no longer knows this point: let the client start over
                log.warning("stream of %s ends: %s", coverage_id, exc.detail, extra={"request_id": request_id})
                break
            cursor = batch.changes.upto
            coverage = batch.changes.coverage
            pin_changed = coverage.pinned_post_id != sent_pin
            coverage_changed = sent_gist is None or batch.gist != sent_gist
            sent_pin, sent_gist = coverage.pinned_post_id, batch.gist
            chunk = batch.chunk(pin_changed, coverage_changed)
            if chunk and not client.left:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if batch.changes.has_more:
                continue
            if coverage.status == "ended":
                break
            try:
                known = await wait_for_change(versions, pool, coverage_id, cursor, settings.stream_keepalive, client)
            except DATABASE_FAULTS:
                known = cursor
                await asyncio.sleep(1.0)
            if (known is None or known <= cursor) and not versions.closing.is_set() and not client.left:
                await send({"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        OPEN_STREAMS.dec()
        client.leave()


_NOTHING = object()
"""The pin a stream has sent before its first batch: unlike any pin, none (None) included."""
HELLO = ServerSentEventMessage(data=None, comment="liveline stream", retry=2000).encode()
"""A stream's first message: it is open, and EventSource reconnects two seconds after losing it."""
KEEP_ALIVE = ServerSentEventMessage(data=None, comment="keep-alive").encode()


class EventStream(ServerSentEvent):
    """Litestar's answer for a stream it opens (api/readers.py): the same `send_stream` as the edge's, so there is
    one stream, whichever path opened it. A `ServerSentEvent` to litestar, for the OpenAPI document."""

    def __init__(self, state: State, coverage_id: str, cursor: int) -> None:
        super().__init__(b"")
        self._opened = (state, coverage_id, cursor)

    def to_asgi_response(self, *_args: Any, **_kwargs: Any) -> ASGIResponse:
        return _Sent(*self._opened)


class _Sent(ASGIResponse):
    """An `EventStream` as litestar sends it: nothing of `ASGIResponse` but being called."""

    def __init__(self, state: State, coverage_id: str, cursor: int) -> None:
        self._opened = (state, coverage_id, cursor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_stream(send, receive, list(RAW_HEADERS), *self._opened, scope.get("state", {}).get("request_id"))


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
        self._chunks: dict[tuple[bool, bool], bytes] = {}

    def chunk(self, pin_changed: bool, coverage_changed: bool) -> bytes:
        """What a stream that last sent another pin (`pin_changed`) or coverage is sent (b"": nothing)."""
        key = (pin_changed, coverage_changed)
        if key not in self._chunks:
            self._chunks[key] = (
                self._posts + (self._pinned if pin_changed else b"") + (self._coverage if coverage_changed else b"")
            )
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
