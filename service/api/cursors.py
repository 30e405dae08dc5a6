"""Opaque values handed to clients: the change cursor and the page token (clients must not parse them).

Each is base64url text without padding, and the document says so (`OPAQUE`): a value outside that alphabet is a
400 from litestar's parameter validation, like any value the document excludes. A value inside it that this API
did not hand out (or one for another coverage or order, or ahead of its log) is well-formed but unusable: the
decoders here raise, and that is a 422 (api/problems.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Literal

from service.api.unusable import InvalidCursor, InvalidPageToken

OPAQUE = "^[A-Za-z0-9_-]+$"
"""What the document states of every cursor and page token: base64url without padding."""
RESUME = "^[A-Za-z0-9_-]*$"
"""A stream's `Last-Event-ID`: a cursor, or empty (no event id seen yet), which counts as absent."""
AS_OF = "^([0-9]{1,10}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))$"
"""`as_of`: a coverage version, or an RFC 3339 time with its offset (upper-case T and Z, as Python reads them)."""

_CURSOR = re.compile(r"c1:([a-z0-9][a-z0-9-]{0,79}):(\d{1,9})")
_PAGE = re.compile(r"p1:([no]):(\d{1,9})")


def _wrap(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unwrap(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def encode_cursor(coverage_id: str, version: int) -> str:
    return _wrap(f"c1:{coverage_id}:{version}")


def decode_cursor(token: str, coverage_id: str) -> int:
    """The coverage version a cursor stands at; raises when it is not one of ours or belongs to another coverage."""
    match = _CURSOR.fullmatch(_unwrap(token))
    if match is None:
        raise InvalidCursor("the cursor is malformed; use one this API returned", cursor=token)
    if match[1] != coverage_id:
        raise InvalidCursor("the cursor belongs to another coverage", cursor=token)
    return int(match[2])


def encode_page(order: Literal["newest", "oldest"], sequence: int) -> str:
    return _wrap(f"p1:{order[0]}:{sequence}")


def decode_page(token: str, order: Literal["newest", "oldest"]) -> int:
    match = _PAGE.fullmatch(_unwrap(token))
    if match is None:
        raise InvalidPageToken("`before` is malformed; pass the `next` value of a previous page")
    if match[1] != order[0]:
        raise InvalidPageToken(f"`before` belongs to a page in another order than {order!r}")
    return int(match[2])


_LISTING = re.compile(r"l1:([0-9T:.+-]{10,40})/([a-z0-9][a-z0-9-]{0,79})")


def encode_listing(started_at: datetime, coverage_id: str) -> str:
    return _wrap(f"l1:{started_at.isoformat()}/{coverage_id}")


def decode_listing(token: str) -> tuple[datetime, str]:
    match = _LISTING.fullmatch(_unwrap(token))
    try:
        if match is None:
            raise ValueError(token)
        started_at = datetime.fromisoformat(match[1])
        if started_at.tzinfo is None:
            raise ValueError(token)
        return started_at.astimezone(UTC), match[2]
    except (ValueError, OverflowError) as exc:
        raise InvalidPageToken("`before` is malformed; pass the `next` value of a previous page") from exc


_FEED = re.compile(r"g1:(\d{1,20}):(\d{1,19})")


def encode_feed(xid: int, position: int) -> str:
    return _wrap(f"g1:{xid}:{position}")


def decode_feed(token: str) -> tuple[int, int]:
    match = _FEED.fullmatch(_unwrap(token))
    if match is None or int(match[1]) >= 2**63 or int(match[2]) >= 2**63:
        raise InvalidCursor("the feed cursor is malformed; use a `next` value this API returned", cursor=token)
    return int(match[1]), int(match[2])
