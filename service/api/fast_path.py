"""The fast path: public reads the edge (api/edge.py) answers before litestar's router, because routing, parameter
parsing and dependency injection cost a poll several times what answering it does. What each part bypasses, and
what proves it answers as litestar would:

- `cached`: a read already rendered for exactly this (coverage, version, path, query, media type), sent through
  the same `cached_answer` as litestar's handlers (tests/integration/test_edge.py compares bytes and headers);
- `rendered`: a plain live timeline page not rendered yet, rendered by the function litestar's handler calls
  (`timeline.live_page` through `answer_read`; the same test file compares every kind of page and coding);
- `stream`: an event stream that opens without an error, opened as litestar's handler opens it
  (`streams.opening`) and sent by the same `streams.send_stream` (tests/e2e/test_readers.py compares them).

Anything else (a token, as_of, around, JSON-LD, a parameter litestar would refuse, any error, 204, HEAD of a
stream) is left to litestar, which answers it the one documented way.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Mapping
from functools import partial
from typing import cast

from litestar.datastructures import State
from litestar.types import ASGIApp, Message, ReceiveMessage, Scope

from service.api import streams
from service.api.admission import Admission
from service.api.caching import answer_read, cached_answer, public_cache_control, read_key
from service.api.live import CoverageVersions, RenderedPages, SharedReads
from service.api.metrics import Tally
from service.api.timeline import live_page, plain_query
from service.config import Settings

FAST = Tally("liveline_fast_path_total", "Public reads answered from memory before routing", ("status",))
EDGE_RENDERS = Tally("liveline_edge_renders_total", "Timeline pages rendered before routing", ("status",))
EDGE_STREAMS = Tally("liveline_edge_streams_total", "Event streams served before routing")

Answer = tuple[int, dict[str, str], bytes]
"""(status, headers, body)."""


class Miss:
    """A public read `cached` found no answer for: its read key, which `rendered` need not make again."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


_CACHED = re.compile(r"^/v1/coverages/([^/]+)(?:/timeline|/changes|/posts/[^/]+(?:/history)?)?$")
_TIMELINE = re.compile(r"^/v1/coverages/([^/]+)/timeline$")
_STREAM = re.compile(r"^/v1/coverages/([^/]+)/stream$")
_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_.-]+")
_PLAIN_VALUE = re.compile(rb"[A-Za-z0-9_.:-]*")
_WAITING = re.compile(rb"(?:^|&)wait=0*[1-9]")
REVALIDATE_EVERY = 0.25
"""Seconds between background renders of one read while writes are being shed."""
_CONDITIONS = (b"if-none-match", b"accept-encoding")
"""Dropped from a background render's request: it must render, not answer 304 or compress."""


def header_map(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


class FastPath:
    """`state` is the app's: its versions, rendered pages, shared reads and known posts, and once the app has
    started its pools (`pool`, and `statements` for timeline pages)."""

    def __init__(self, app: ASGIApp, settings: Settings, state: State, admission: Admission) -> None:
        self._app = app
        self._settings = settings
        self._state = state
        self._admission = admission
        self._versions: CoverageVersions = state.versions
        self._pages: RenderedPages = state.pages
        self._reads: SharedReads = state.reads
        self._cache_control = public_cache_control(settings)
        self._revalidating: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._revalidated: dict[tuple[str, str], float] = {}
        """When each variant's latest background render started (monotonic clock)."""

    def cached(self, scope: Scope, headers: Mapping[str, str]) -> Answer | Miss | None:
        """A public read already rendered at the coverage's current version; a `Miss` when it is a public read of
        a known coverage not rendered yet; None when it is neither.

        While writes are being shed, a read whose fresh answer is not rendered yet gets the answer rendered just
        before the coverage moved on (no staler than `cache_max_age`, as any shared cache may serve it), and a
        fresh one is rendered in the background: under a flood of writes no reader waits for a render.
        """
        if scope.get("method") != "GET" or "authorization" in headers:
            return None
        route = _CACHED.match(scope["path"])
        if route is None or _WAITING.search(scope["query_string"]) or "ld+json" in headers.get("accept", ""):
            return None
        coverage_id = route[1]
        known = self._versions.known(coverage_id)
        if known is None:
            return None
        key = read_key(self._versions, scope["path"], scope["query_string"], "application/json")
        rendered = self._pages.get((coverage_id, known, key))
        if rendered is None and self._admission.shedding:
            rendered = self._pages.previous(coverage_id, key, within=self._settings.cache_max_age)
            if rendered is not None:
                self._revalidate(scope, (coverage_id, key))
        return Miss(key) if rendered is None else cached_answer(headers, rendered, self._cache_control)

    async def rendered(self, scope: Scope, headers: Mapping[str, str], miss: Miss | None = None) -> Answer | None:
        """A plain live timeline page, rendered here, or None. `miss`: what `cached` found of this request."""
        if scope.get("method") != "GET" or "authorization" in headers or "ld+json" in headers.get("accept", ""):
            return None
        route = _TIMELINE.match(scope["path"])
        parameters = None if route is None else plain_parameters(scope["query_string"])
        query = None if parameters is None else plain_query(parameters)
        pool, statements = self._state.get("pool"), self._state.get("statements")
        if route is None or query is None or pool is None or statements is None:
            return None
        coverage_id = route[1]
        try:
            return await answer_read(
                self._versions,
                self._pages,
                self._reads,
                path=scope["path"],
                query_string=scope["query_string"],
                headers=headers,
                coverage_id=coverage_id,
                key=None if miss is None else miss.key,
                render=partial(
                    live_page,
                    pool,
                    statements,
                    self._state.known_posts,
                    self._state.encoded_posts,
                    self._settings,
                    coverage_id,
                    query,
                    False,
                ),
                cache_control=self._cache_control,
            )
        except Exception:  # an unknown coverage, a database fault, anything: litestar answers it, documented
            return None

    async def stream(self, scope: Scope, headers: Mapping[str, str]) -> tuple[str, int] | None:
        """(coverage, cursor) of an event stream that opens without an error, or None."""
        route = _STREAM.match(scope["path"]) if scope.get("method") == "GET" else None
        parameters = None if route is None else plain_parameters(scope["query_string"])
        pool = self._state.get("pool")
        if route is None or parameters is None or pool is None:
            return None
        since = parameters.get(b"since")
        resume = headers.get("last-event-id") or (since.decode("ascii") if since else None)
        try:
            start = await streams.opening(pool, route[1], resume)
        except Exception:  # an unknown coverage, a bad cursor, a database fault: litestar answers it, documented
            return None
        # Interned: ten thousand streams of one coverage share one string of its id rather than keep one each.
        return None if start is None else (sys.intern(route[1]), start)

    def _revalidate(self, scope: Scope, variant: tuple[str, str]) -> None:
        """Render the current answer of this read in the background, the way a reader's request would (here for
        a plain timeline page, otherwise through litestar, the answer dropped and the rendering kept).

        At most one at a time per variant, and one per `REVALIDATE_EVERY`: under a flood of writes the coverage
        moves on hundreds of times a second, and rendering each version would spend on answers nobody gets the
        CPU the shedding is there to save.
        """
        now = time.monotonic()
        last = self._revalidated.get(variant, -REVALIDATE_EVERY)
        if variant in self._revalidating or now - last < REVALIDATE_EVERY:
            return
        if len(self._revalidated) >= self._pages.capacity:
            for old in [v for v, at in self._revalidated.items() if now - at >= REVALIDATE_EVERY]:
                del self._revalidated[old]
        self._revalidated[variant] = now
        plain = [(name, value) for name, value in scope["headers"] if name not in _CONDITIONS]
        copy = cast("Scope", {**scope, "headers": plain, "state": {}})

        async def receive() -> ReceiveMessage:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_message: Message) -> None:
            return None

        async def refresh() -> None:
            try:
                if await self.rendered(copy, header_map(copy)) is None:
                    await self._app(copy, receive, discard)
            finally:
                del self._revalidating[variant]

        self._revalidating[variant] = asyncio.get_running_loop().create_task(refresh())


def plain_parameters(query_string: bytes) -> dict[bytes, bytes] | None:
    """The query's parameters when none is escaped (or None): what the fast path reads itself. Litestar reads the
    rest, since an escaped name may spell one a handler reads. Repeated, nameless and empty ones were refused
    before (api/edge.py)."""
    parameters: dict[bytes, bytes] = {}
    for part in query_string.split(b"&") if query_string else ():
        name, _, value = part.partition(b"=")
        if not _PLAIN_NAME.fullmatch(name) or not _PLAIN_VALUE.fullmatch(value):
            return None
        parameters[name] = value
    return parameters
