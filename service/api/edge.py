"""The edge: what every HTTP request passes before litestar's router. Request ids, CORS, request metrics, the
access log, write admission, HEAD and query checks for all; then public reads the fast path answers itself
(api/fast_path.py says what it bypasses and which tests prove it answers like litestar).

One raw ASGI layer, hand-written on purpose: litestar's middleware runs after routing, and its CORSConfig
applies one policy to the whole app, while public reads must answer any origin and writes only the origins an
operator names (`LIVELINE_CORS_ORIGINS`).
"""

from __future__ import annotations

import hmac
import itertools
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import cast
from urllib.parse import unquote_to_bytes

import msgspec
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from service import logs
from service.api import streams
from service.api.admission import Admission
from service.api.body_limits import ShapeRefused, check_shape
from service.api.contract import Routes
from service.api.fast_path import EDGE_RENDERS, EDGE_STREAMS, FAST, FastPath, header_map
from service.api.metrics import Tally
from service.api.problems import PROBLEM_TYPE
from service.config import Settings

_problem_encoder = msgspec.json.Encoder()
REQUESTS = Tally("liveline_http_requests_total", "HTTP requests answered", ("method", "status"))

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PUBLIC = re.compile(r"^/v1/coverages(?:/|$)")
PUBLIC_HEADERS = "Accept, If-None-Match, Last-Event-ID, X-Request-ID"
WRITE_HEADERS = f"{PUBLIC_HEADERS}, Authorization, Content-Type, If-Match, Idempotency-Key"
EXPOSED = "ETag, Location, Retry-After, X-Request-ID"
READER_ERRORS = (404, 410)


class RequestIds:
    """The client's X-Request-ID when sane, else a cheap unique one: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def of(self, sent: str | None) -> str:
        if sent and _SANE_ID.match(sent):
            return sent
        return f"{self._prefix}{next(self._counter):x}"


def _cors(method: str, path: str, origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """CORS headers of an answer: any origin for public reads, named origins for everything else."""
    if origin is None:
        return {}
    if method in ("GET", "HEAD") and _PUBLIC.match(path):
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED}
    if origin in allowed or "*" in allowed:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED, "Vary": "Origin"}
    return {}


def _preflight(path: str, headers: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str] | None:
    """The answer to a CORS preflight, or None when this is a plain OPTIONS request for litestar."""
    origin, method = headers.get("origin"), headers.get("access-control-request-method")
    if origin is None or method is None:
        return None
    if origin in allowed or "*" in allowed:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
            "Access-Control-Allow-Headers": WRITE_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
    if method in ("GET", "HEAD") and _PUBLIC.match(path):
        return {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "GET, HEAD",
            "Access-Control-Allow-Headers": PUBLIC_HEADERS,
            "Access-Control-Max-Age": "86400",
        }
    return {}  # answered without permission: the browser refuses the request


class _Exchange:
    """One request as the access log and the request metrics record it, once it is answered.

    An object rather than a closure over the request's locals: a closure would make cells of them, kept for as
    long as the request lasts, and a stream lasts for hours.
    """

    __slots__ = ("method", "path", "request_id", "started")

    def __init__(self, method: str, path: str, request_id: str) -> None:
        self.method, self.path, self.request_id = method, path, request_id
        self.started = time.perf_counter()

    def finished(self, status: int, fast_path: bool = False) -> None:
        REQUESTS.inc(self.method if self.method in _METHODS else "other", status)
        if fast_path:
            FAST.inc(status)
        if logs.ACCESS.enabled:
            duration_ms = round((time.perf_counter() - self.started) * 1000, 2)
            logs.ACCESS.write(self.request_id, self.method, self.path, status, duration_ms)


# Methods outside HTTP's own count as "other": a client may send any token as a method, and each would otherwise
# be a counter for as long as the process lives.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


def edge(app: ASGIApp, settings: Settings, state: State, routes: Routes) -> ASGIApp:
    """`state` is the app's (what the fast path answers from)."""
    allowed = frozenset(settings.cors_origins)
    reader_error_cache = f"public, max-age={settings.cache_max_age}"
    ids = RequestIds()
    admission = Admission(settings.max_writes_in_flight, settings.overload_writes_per_second)
    fast = FastPath(app, settings, state, admission)

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = header_map(scope)
        method, path = cast("str", scope.get("method")), scope["path"]
        head = method == "HEAD"
        if head:
            # Every GET answers HEAD (caches and monitors expect it): the GET runs, its headers go out, its body
            # does not. Hand-written because litestar routes HEAD only to handlers declared for it.
            scope = cast("Scope", {**scope, "method": "GET"})
        request_id = ids.of(headers.get("x-request-id"))
        exchange = _Exchange(method, path, request_id)
        extra = {"X-Request-ID": request_id, **_cors(method, path, headers.get("origin"), allowed)}
        if path == "/metrics" and not _may_scrape(headers, settings.metrics_token):
            status, answer, body = (
                _problem(401, "Metrics need their token", "send Authorization: Bearer <LIVELINE_METRICS_TOKEN>", "auth")
                if settings.metrics_token
                else _problem(404, "Not found", "metrics are not served: set LIVELINE_METRICS_TOKEN", "not-found")
            )
            await _respond(send, status, {**answer, **extra}, body)
            exchange.finished(status)
            return
        preflight = _preflight(path, headers, allowed) if method == "OPTIONS" else None
        if preflight is not None:
            await _respond(send, 204, {**preflight, "X-Request-ID": request_id}, b"")
            exchange.finished(204)
            return
        malformed = _malformed_query(scope["query_string"])
        if malformed is not None:
            # Every parameter of this API takes one value; which of several a framework keeps is not a contract.
            status, answer, body = _problem(400, "Invalid request", malformed, "invalid-request")
            await _respond(send, status, {**answer, **extra}, body)
            exchange.finished(status)
            return
        methods = routes.allow(path) if method == "OPTIONS" else None  # not on every request: a regex scan
        if methods is not None:
            await _respond(send, 204, {"Allow": methods, **extra}, b"")
            exchange.finished(204)
            return
        if method in _WRITES and admission.refuses(headers.get("authorization", "")):
            # Shed at once what cannot be done soon: queued writes would time out at the client anyway, and the
            # event loop they would crowd is the one every reader shares.
            status, answer, body = _problem(
                503, "Overloaded", "too many writes in progress; retry shortly (same Idempotency-Key)", "overloaded"
            )
            await _respond(send, status, {**answer, "Retry-After": "1", **extra}, body)
            exchange.finished(status)
            return
        if method in _WITH_BODY:
            buffered = await _read_body(receive, settings.max_body_bytes)
            misshapen = _shape_refused(buffered, settings.max_body_bytes)
            if misshapen is not None:
                status, answer, body = misshapen
                await _respond(send, status, {**answer, **extra}, body)
                exchange.finished(status)
                return
            receive = _replay(buffered, receive)
        quick = fast.cached(scope, headers)
        if isinstance(quick, tuple):
            status, answer, body = quick
            await _respond(send, status, {**answer, **extra}, body, head)
            exchange.finished(status, fast_path=True)
            return
        rendered = await fast.rendered(scope, headers, quick)
        if rendered is not None:
            status, answer, body = rendered
            await _respond(send, status, {**answer, **extra}, body, head)
            EDGE_RENDERS.inc(status)
            exchange.finished(status)
            return
        opened = None if head else await fast.stream(scope, headers)
        if opened is not None:
            EDGE_STREAMS.inc()
            answer_headers = _merged(streams.RAW_HEADERS, extra)
            coverage_id, cursor = opened
            del headers, extra, opened  # a stream keeps this frame for hours: not what it no longer needs
            try:
                await streams.send_stream(send, receive, answer_headers, state, coverage_id, cursor, request_id)
            finally:
                exchange.finished(200)
            return
        if head:
            send, receive = _headers_only(send, receive)
        await _routed(app, scope, receive, send, extra, headers, exchange, admission, routes, reader_error_cache)

    return handle


async def _routed(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: dict[str, str],
    headers: Mapping[str, str],
    exchange: _Exchange,
    admission: Admission,
    routes: Routes,
    reader_error_cache: str,
) -> None:
    """What litestar answers, with the edge's headers added to its answer (its own function, so that the edge's
    frame, which a stream keeps, holds no closure)."""
    status_sent = 500

    async def send_with_edge(message: Message) -> None:
        nonlocal status_sent
        if message["type"] == "http.response.start":
            status_sent = message["status"]
            added = dict(extra)
            if status_sent in READER_ERRORS and exchange.method in ("GET", "HEAD") and "authorization" not in headers:
                added.setdefault("Cache-Control", reader_error_cache)  # a cache absorbs floods of bad URLs
            if status_sent == 405 and (every := routes.allow(scope["path"])) is not None:
                added["Allow"] = every  # every method of the path, whichever controller has it
            message["headers"] = _merged(message.get("headers", []), added)
        await send(message)

    scope.setdefault("state", {})["request_id"] = exchange.request_id
    token = logs.request_id.set(exchange.request_id)
    writing = exchange.method in _WRITES
    admission.in_flight += writing
    try:
        await app(scope, receive, send_with_edge)
    finally:
        admission.in_flight -= writing
        if "authorization" in headers:
            admission.trust(headers["authorization"], status_sent)
        logs.request_id.reset(token)
        exchange.finished(status_sent)


def _malformed_query(query_string: bytes) -> str | None:
    """Why the query cannot be read as one value per named parameter, or None."""
    if not query_string:
        return None
    pairs = [part.partition(b"=") for part in query_string.split(b"&") if part]
    names = [name for name, _, _ in pairs]
    if len(set(names)) == len(names) and all(name and value for name, _, value in pairs):
        return None  # the common case, without unescaping each name for a message nobody will read
    for name, _, value in pairs:
        shown = unquote_to_bytes(name).decode("utf-8", "replace")
        if not name:
            return "a query parameter has no name"
        if not value:
            return f"query parameter {shown!r} has no value (leave it out instead)"
        if names.count(name) > 1:
            return f"query parameter {shown!r} is given more than once"
    return None


def _headers_only(send: Send, receive: Receive) -> tuple[Send, Receive]:
    """For HEAD: the answer's start goes out, its body does not (one empty final chunk instead), and once the
    answer has started the client counts as gone, so a stream stops at once rather than run into the void."""
    state = {"started": False, "ended": False}

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["started"] = True
            await send(message)
        elif message["type"] == "http.response.body" and not state["ended"]:
            state["ended"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive_head() -> ReceiveMessage:
        if state["started"]:
            return {"type": "http.disconnect"}
        return await receive()

    return send_head, receive_head


def _merged(raw: Iterable[tuple[bytes, bytes]], added: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Response headers plus ours; ours replace same-named ones, except Vary, which is joined."""
    replaced = {name.lower().encode("latin-1") for name in added}
    kept: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    for name, value in raw:
        lowered = name.lower()
        if lowered == b"vary":
            vary.append(value)
        elif lowered == b"cache-control" and "Cache-Control" in added:
            added.pop("Cache-Control")  # the handler chose its own caching: keep it
            kept.append((name, value))
        elif lowered not in replaced:
            kept.append((name, value))
    if "Vary" in added:
        vary.append(added.pop("Vary").encode("latin-1"))
    kept.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in added.items())
    if vary:
        kept.append((b"vary", b", ".join(vary)))
    return kept


def _may_scrape(headers: Mapping[str, str], token: str | None) -> bool:
    """/metrics only for the operator's scraper: 20 KB of internals are nobody else's business."""
    sent = headers.get("authorization", "")
    return token is not None and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _read_body(receive: Receive, limit: int) -> list[ReceiveMessage]:
    """The request's body messages, up to one past the size limit (litestar answers 413 beyond it)."""
    messages: list[ReceiveMessage] = []
    size = 0
    while size <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break
        size += len(message.get("body", b""))
    return messages


def _shape_refused(messages: list[ReceiveMessage], limit: int) -> tuple[int, dict[str, str], bytes] | None:
    """A problem answer for a body over the size limit or beyond a shape limit, before anything parses it."""
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    if len(body) > limit or (messages and messages[-1].get("more_body")):
        return _problem(413, "Request body too large", f"the limit is {limit:,} bytes", "body-too-large")
    try:
        check_shape(body)
    except ShapeRefused as refused:
        return _problem(400, "Request body refused", refused.detail, "body-shape")
    return None


def _problem(status: int, title: str, detail: str, slug: str) -> tuple[int, dict[str, str], bytes]:
    problem = {"status": status, "title": title, "detail": detail, "type": PROBLEM_TYPE + slug}
    return status, {"Content-Type": "application/problem+json"}, _problem_encoder.encode(problem)


def _replay(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """A receive that hands litestar the messages already read, then goes on with the connection."""
    pending = list(reversed(messages))

    async def replay() -> ReceiveMessage:
        return pending.pop() if pending else await receive()

    return replay


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes, head: bool = False) -> None:
    """One whole answer; for HEAD, the same headers (Content-Length included) and no body."""
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"" if head else body, "more_body": False}
    await send(end)
