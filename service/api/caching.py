"""Conditional GETs that cost nothing: ETags derived from the coverage version this process already knows,
`If-None-Match` → 304 without the database, rendered answers kept in a bounded LRU with their gzip and brotli
forms (made once per rendered version, each with its own ETag)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import State

from service.api.live import CoverageVersions, Rendered, RenderedPages, SharedReads
from service.config import Settings

_encoder = msgspec.json.Encoder()
PRIVATE = "private, no-store"
VARY = "Accept, Accept-Encoding, Authorization"
COMPRESS_FROM = 512
"""Bytes: smaller answers are sent as they are (compression would save less than its headers cost)."""
_SUFFIX = {"br": "br", "gzip": "gz"}

Render = Callable[[], Awaitable[tuple[int, object]]]
"""Reads the database and returns (the coverage version it saw, the content to send)."""


def public_cache_control(settings: Settings) -> str:
    return f"public, max-age={settings.cache_max_age}, stale-while-revalidate={settings.cache_stale_while_revalidate}"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    # Weak comparison (RFC 9110 §13.1.2): proxies that compress often weaken our strong tags.
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def digest_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def version_etag(version: int, variant: str) -> str:
    """Strong: one coverage version and one variant (path, query, media type) always render the same bytes."""
    return f'"{version}-{hashlib.blake2b(variant.encode(), digest_size=6).hexdigest()}"'


READ_PARAMETERS = frozenset({"around", "as_of", "before", "key_events", "limit", "order", "since", "wait"})
"""Every query parameter a cached read takes (tests/integration/test_openapi.py holds it to the document). Any other
changes nothing in the answer (litestar ignores it): a cache buster (`?_=1700000000`) is no part of a read's cache
key or ETag, so a client that adds one to every poll is answered from memory like any other."""
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def variant_of(path: str, query_string: bytes, media_type: str) -> str:
    """What a rendered answer depends on besides the coverage version; the fast path computes it the same way.
    The query's parameters are sorted as sent, not unescaped: two spellings of one query are two entries of the
    same content, which costs memory only. A parameter no read takes is left out, unless its name is escaped
    (it may spell one that is)."""
    query = "&".join(sorted(filter(_read, query_string.decode("latin-1").split("&")))) if query_string else ""
    return f"{path}?{query}#{media_type}"


def _read(parameter: str) -> bool:
    name = parameter.partition("=")[0]
    return name in READ_PARAMETERS or not _PLAIN_NAME.fullmatch(name)


def negotiate(accept_encoding: str | None, size: int) -> str | None:
    """br, then gzip, when the client accepts it (q > 0) and the body is worth compressing."""
    if not accept_encoding or size < COMPRESS_FROM:
        return None
    accepted: set[str] = set()
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if params.strip().replace(" ", "") not in {"q=0", "q=0.0", "q=0.00", "q=0.000"}:
            accepted.add(coding.strip().lower())
    for coding in ("br", "gzip"):
        if coding in accepted:
            return coding
    return None


def encoded_etag(etag: str, coding: str | None) -> str:
    """Each content coding is a different representation, so it gets its own strong ETag."""
    return etag if coding is None else f'{etag[:-1]}.{_SUFFIX[coding]}"'


def cached_answer(
    headers: Mapping[str, str], rendered: Rendered, cache_control: str
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a rendered answer for a request with these headers: 304 when the client holds
    it, otherwise the body in the best coding it accepts. One definition for litestar and the fast path."""
    coding = negotiate(headers.get("accept-encoding"), len(rendered.body))
    etag = encoded_etag(rendered.etag, coding)
    answer = {"ETag": etag, "Cache-Control": cache_control, "Vary": VARY}
    if etag_matches(headers.get("if-none-match"), etag):
        return 304, answer, b""
    answer["Content-Type"] = rendered.media_type
    if coding is None:
        return 200, answer, rendered.body
    answer["Content-Encoding"] = coding
    return 200, answer, rendered.encoded(coding)


def send(request: Request[Any, Any, State], rendered: Rendered, cache_control: str) -> Response[Any]:
    status, headers, body = cached_answer(request.headers, rendered, cache_control)
    media_type = headers.pop("Content-Type", rendered.media_type)
    return Response(body, status_code=status, headers=headers, media_type=media_type)


def conditional_json(
    request: Request[Any, Any, State],
    content: object,
    *,
    cache_control: str,
    etag: str | None = None,
    media_type: str = "application/json",
) -> Response[Any]:
    """The JSON answer, or 304 when the client already holds it; ETag defaults to a digest of the body.

    The body is encoded here, once, because the ETag is a digest of exactly these bytes; handlers
    annotate the view type for OpenAPI.
    """
    body = _encoder.encode(content)
    return send(request, Rendered(body, etag or digest_etag(body), media_type), cache_control)


def read_key(versions: CoverageVersions, path: str, query_string: bytes, media_type: str) -> str:
    # The epoch changes when a rebuild swaps the reader tables: nothing rendered before is reused after.
    return f"{versions.epoch}|{variant_of(path, query_string, media_type)}"


async def coverage_read(
    request: Request[Any, Any, State],
    *,
    coverage_id: str,
    render: Render,
    cache_control: str,
    media_type: str = "application/json",
    etag_of: Callable[[object], str] | None = None,
) -> Response[Any]:
    """`answer_read` for a litestar handler."""
    state = request.app.state
    status, headers, body = await answer_read(
        state.versions,
        state.pages,
        state.reads,
        path=request.scope["path"],
        query_string=request.scope["query_string"],
        headers=request.headers,
        coverage_id=coverage_id,
        render=render,
        cache_control=cache_control,
        media_type=media_type,
        etag_of=etag_of,
    )
    sent_type = headers.pop("Content-Type", media_type)
    return Response(body, status_code=status, headers=headers, media_type=sent_type)


async def answer_read(
    versions: CoverageVersions,
    pages: RenderedPages,
    shared: SharedReads,
    *,
    path: str,
    query_string: bytes,
    headers: Mapping[str, str],
    coverage_id: str,
    render: Render,
    cache_control: str,
    media_type: str = "application/json",
    etag_of: Callable[[object], str] | None = None,
    key: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a public read of one coverage, answered from memory whenever the version is
    known. Litestar's handlers and the fast path's renders (api/fast_path.py) both answer through it.

    With `etag_of` the ETag comes from the content (posts: their revision) and a 304 needs a cached
    rendering; otherwise it derives from the version and needs nothing at all. The content may depend on
    nothing but the coverage version, the path, the query and the media type (absolute URLs come from
    settings, never from the request's Host): that is the cache key and what the ETag is made of. `key`: that
    key (`read_key`) when the caller has made it already.
    """
    variant = read_key(versions, path, query_string, media_type) if key is None else key
    known = versions.known(coverage_id)
    if known is not None:
        hit = pages.get((coverage_id, known, variant))
        if hit is not None:
            return cached_answer(headers, hit, cache_control)
        held = headers.get("if-none-match")
        if etag_of is None and held is not None:
            tag = version_etag(known, variant)
            if etag_matches(held, tag):
                return cached_answer(headers, Rendered(b"", tag, media_type), cache_control)

    async def render_once() -> Rendered:
        generation = versions.generation
        version, content = await render()
        body = _encoder.encode(content)
        tag = etag_of(content) if etag_of else version_etag(version, variant)
        rendered = Rendered(body, tag, media_type)
        pages.put((coverage_id, version, variant), rendered)
        versions.observe(coverage_id, version, generation)
        return rendered

    # Readers woken by one change ask at once: one of them renders, the others share its answer.
    rendered = await shared.run(None if known is None else (coverage_id, known, variant), render_once)
    return cached_answer(headers, rendered, cache_control)


def encode(content: object) -> bytes:
    return _encoder.encode(content)
