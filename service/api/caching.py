"""Conditional GETs: strong ETags, `If-None-Match` → 304, and Cache-Control for shared caches."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import State

from service.config import Settings

_encoder = msgspec.json.Encoder()
PRIVATE = "private, no-store"


def public_cache_control(settings: Settings) -> str:
    return f"public, max-age={settings.cache_max_age}, stale-while-revalidate={settings.cache_stale_while_revalidate}"


def etag_matches(request: Request[Any, Any, State], etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    # Weak comparison (RFC 9110 §13.1.2): proxies that compress often weaken our strong tags.
    candidates = {candidate.strip().removeprefix("W/") for candidate in header.split(",")}
    return "*" in candidates or etag in candidates


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
    tag = etag or '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {"ETag": tag, "Cache-Control": cache_control, "Vary": "Accept, Authorization"}
    if etag_matches(request, tag):
        return Response(b"", status_code=304, headers=headers, media_type=media_type)
    return Response(body, headers=headers, media_type=media_type)


def encode(content: object) -> bytes:
    return _encoder.encode(content)
