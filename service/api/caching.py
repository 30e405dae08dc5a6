"""Conditional GETs that cost nothing: ETags derived from the coverage version this process already knows,
`If-None-Match` → 304 without the database, rendered answers kept in a bounded LRU."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import State

from service.api.live import CoverageVersions, Rendered, RenderedPages
from service.config import Settings

_encoder = msgspec.json.Encoder()
PRIVATE = "private, no-store"

Render = Callable[[], Awaitable[tuple[int, object]]]
"""Reads the database and returns (the coverage version it saw, the content to send)."""


def public_cache_control(settings: Settings) -> str:
    return f"public, max-age={settings.cache_max_age}, stale-while-revalidate={settings.cache_stale_while_revalidate}"


def etag_matches(request: Request[Any, Any, State], etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    # Weak comparison (RFC 9110 §13.1.2): proxies that compress often weaken our strong tags.
    candidates = {candidate.strip().removeprefix("W/") for candidate in header.split(",")}
    return "*" in candidates or etag in candidates


def digest_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def version_etag(version: int, variant: str) -> str:
    """Strong: one coverage version and one variant (path, query, media type) always render the same bytes."""
    return f'"{version}-{hashlib.blake2b(variant.encode(), digest_size=6).hexdigest()}"'


def variant_of(request: Request[Any, Any, State], media_type: str) -> str:
    query = "&".join(sorted(f"{k}={v}" for k, values in request.query_params.dict().items() for v in values))
    return f"{request.url.path}?{query}#{media_type}"


def send(
    request: Request[Any, Any, State], body: bytes, etag: str, cache_control: str, media_type: str
) -> Response[Any]:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept, Authorization"}
    if etag_matches(request, etag):
        return Response(b"", status_code=304, headers=headers, media_type=media_type)
    return Response(body, headers=headers, media_type=media_type)


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
    return send(request, body, etag or digest_etag(body), cache_control, media_type)


async def coverage_read(
    request: Request[Any, Any, State],
    *,
    coverage_id: str,
    render: Render,
    cache_control: str,
    media_type: str = "application/json",
    etag_of: Callable[[object], str] | None = None,
    variant_extra: str = "",
) -> Response[Any]:
    """A public read of one coverage, answered from memory whenever the version is known.

    With `etag_of` the ETag comes from the content (posts: their revision) and a 304 needs a cached
    rendering; otherwise it derives from the version and needs nothing at all. `variant_extra` names
    whatever else the content depends on (JSON-LD embeds the host the request came to).
    """
    versions: CoverageVersions = request.app.state.versions
    pages: RenderedPages = request.app.state.pages
    # The epoch changes when a rebuild swaps the reader tables: nothing rendered before is reused after.
    variant = f"{versions.epoch}|{variant_of(request, media_type)}|{variant_extra}"
    known = versions.known(coverage_id)
    if known is not None:
        if etag_of is None:
            tag = version_etag(known, variant)
            if etag_matches(request, tag):
                return send(request, b"", tag, cache_control, media_type)
        hit = pages.get((coverage_id, known, variant))
        if hit is not None:
            return send(request, hit.body, hit.etag, cache_control, media_type)
    generation = versions.generation
    version, content = await render()
    body = _encoder.encode(content)
    tag = etag_of(content) if etag_of else version_etag(version, variant)
    pages.put((coverage_id, version, variant), Rendered(body, tag))
    versions.observe(coverage_id, version, generation)
    return send(request, body, tag, cache_control, media_type)


def encode(content: object) -> bytes:
    return _encoder.encode(content)
