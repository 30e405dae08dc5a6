"""The reader timeline, a page at a time: which posts a page shows, read live from the reader tables or replayed
for an auditor's `as_of`, and what the page says (JSON or JSON-LD).

Litestar's handler (api/readers.py) and the fast path (api/fast_path.py) both render through `live_page`,
so a page sends the same bytes whichever path rendered it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from msgspec import Struct

from service.api import jsonld
from service.api.coverages import coverage_not_found, find_coverage
from service.api.cursors import decode_page, encode_page
from service.api.unusable import InvalidAsOf, InvalidPageToken
from service.api.views import EncodedPosts, EncodedTimelinePage, coverage_view
from service.config import Settings
from service.domain.errors import CoverageNotFound, PostNotFound
from service.domain.ids import is_coverage_id, is_post_id
from service.domain.state import CoverageState, PostState, Timeline, replay
from service.projections import read_model
from service.store import events
from service.store.pool import Connection, Statements, snapshot

Order = Literal["newest", "oldest"]


class PageQuery(Struct, frozen=True, kw_only=True):
    """What a timeline page shows, as the query asked for it (`past`: the decoded `before`)."""

    limit: int = 20
    order: Order = "newest"
    past: int | None = None
    key_events: bool = False
    around: str | None = None


_DIGITS = re.compile(rb"[1-9][0-9]{0,2}")
_TOKEN = re.compile(rb"[A-Za-z0-9_-]{1,200}")


def plain_query(parameters: dict[bytes, bytes]) -> PageQuery | None:
    """The live page a query asks for when the edge may render it itself, or None to leave it to litestar.

    `parameters` are the query's, none of them escaped (the edge's `plain_parameters`). Each one the handler
    reads must be in the one spelling the handler reads the same way (`true`/`false`, a limit of 1 to 100, a
    well-formed `before`); one it does not read is ignored, as litestar ignores it. `as_of` and `around`, and
    anything litestar would refuse, go to litestar, which answers them (errors included) the one documented way.
    """
    values = dict(parameters)
    limit, order, before, key_events = (values.pop(n, None) for n in (b"limit", b"order", b"before", b"key_events"))
    if b"as_of" in values or b"around" in values:
        return None
    if limit is not None and not (_DIGITS.fullmatch(limit) and int(limit) <= 100):
        return None
    if order not in (None, b"newest", b"oldest") or key_events not in (None, b"true", b"false"):
        return None
    chosen: Order = "oldest" if order == b"oldest" else "newest"
    past = None
    if before is not None:
        if not _TOKEN.fullmatch(before):
            return None
        try:
            past = decode_page(before.decode("ascii"), chosen)
        except InvalidPageToken:
            return None
    return PageQuery(
        limit=20 if limit is None else int(limit), order=chosen, past=past, key_events=key_events == b"true"
    )


def page_content(
    coverage: CoverageState,
    latest: str | None,
    shown: list[PostState],
    more: bool,
    pinned: PostState | None,
    query: PageQuery,
    settings: Settings,
    as_jsonld: bool,
    encoded: EncodedPosts | None = None,
) -> object:
    """A page as sent: JSON-LD, or a `TimelinePage` with each post's JSON from `encoded` (the process's, for a
    live page: a page is rendered at every change, and its posts mostly have not changed) or made for this page."""
    if as_jsonld:
        return jsonld.live_blog_posting(coverage, shown, settings.public_url.rstrip("/"))
    pinned_id = coverage.pinned_post_id
    encoded = EncodedPosts() if encoded is None else encoded
    view = coverage_view(coverage, latest, settings.poll_interval)
    return EncodedTimelinePage(
        coverage=view,
        pinned=encoded.of(pinned, pinned_id) if pinned else None,
        posts=encoded.all_of(shown, pinned_id),
        next=encode_page(query.order, shown[-1].sequence) if more and shown else None,
        cursor=view.cursor,
    )


async def live_page(
    pool: asyncpg.Pool,
    statements: Statements,
    known: read_model.KnownPosts,
    encoded: EncodedPosts,
    settings: Settings,
    coverage_id: str,
    query: PageQuery,
    as_jsonld: bool,
) -> tuple[int, object]:
    """(the coverage version read, the page): the common page in one statement (two when it shows a post this
    process has not read at its current version) through `statements`, a page `around` a post in one snapshot of
    `pool`."""
    if query.around is None:
        read = await read_model.timeline_page(
            statements,
            coverage_id,
            limit=query.limit + 1,
            order=query.order,
            past=query.past,
            key_events_only=query.key_events,
            known=known,
        ) if is_coverage_id(coverage_id) else None  # fmt: skip
        if read is None:
            raise coverage_not_found(coverage_id)
        shown, more = read.posts[: query.limit], len(read.posts) > query.limit
        row = read.coverage
        return row.state.version, page_content(
            row.state, row.latest_post_id, shown, more, read.pinned, query, settings, as_jsonld, encoded
        )
    async with snapshot(pool) as conn:
        row = await find_coverage(conn, coverage_id)

        async def fetch(order: Order, past: int | None, limit: int) -> Sequence[PostState]:
            return await read_model.timeline_posts(
                conn, coverage_id, limit=limit, order=order, past=past, key_events_only=query.key_events
            )

        async def find(post_id: str) -> PostState | None:
            return await read_model.load_post(conn, post_id)

        shown, more = await shown_posts(fetch, find, coverage_id, query)
        pinned_id = row.state.pinned_post_id
        pinned = await read_model.load_post(conn, pinned_id) if pinned_id else None
    content = page_content(row.state, row.latest_post_id, shown, more, pinned, query, settings, as_jsonld)
    return row.state.version, content


async def page_as_of(
    pool: asyncpg.Pool, settings: Settings, coverage_id: str, as_of: str, query: PageQuery, as_jsonld: bool
) -> object:
    """The page as it was at `as_of` (a version or an RFC 3339 time), replayed with the live projection's fold."""
    async with snapshot(pool) as conn:
        head = (await find_coverage(conn, coverage_id)).state.version
        version = await _as_of_version(conn, coverage_id, as_of)
        if version > head:
            raise InvalidAsOf(f"the coverage is at version {head}, not yet {version}", version=head)
        stream = await events.read_stream(conn, coverage_id, version)
    timeline = replay(stream)
    assert timeline.coverage is not None
    fetch, find = _replayed_source(timeline, query.key_events)
    shown, more = await shown_posts(fetch, find, coverage_id, query)
    pinned_then = timeline.posts.get(timeline.coverage.pinned_post_id or "")
    return page_content(timeline.coverage, _latest_of(timeline), shown, more, pinned_then, query, settings, as_jsonld)


Fetch = Callable[[Order, int | None, int], Awaitable[Sequence[PostState]]]
"""(order, the sequence to continue past, how many) -> visible posts: from SQL, or from a replayed state."""
Find = Callable[[str], Awaitable[PostState | None]]


async def shown_posts(fetch: Fetch, find: Find, coverage_id: str, query: PageQuery) -> tuple[list[PostState], bool]:
    """The posts of one timeline page and whether more follow; one definition for live and `as_of` reads."""
    limit, order = query.limit, query.order
    if query.around is None:
        posts = await fetch(order, query.past, limit + 1)
        return list(posts[:limit]), len(posts) > limit
    around = query.around
    centre = await find(around) if is_post_id(around) else None
    if centre is None or centre.coverage_id != coverage_id or centre.retracted:
        raise PostNotFound(f"no visible post {around} in coverage {coverage_id!r}", post_id=around)
    opposite: Order = "oldest" if order == "newest" else "newest"
    earlier = await fetch(opposite, centre.sequence, (limit - 1) // 2)
    room = limit - len(earlier) - 1
    later = await fetch(order, centre.sequence, room + 1)
    return [*reversed(earlier), centre, *later[:room]], len(later) > room


def _replayed_source(timeline: Timeline, key_events: bool) -> tuple[Fetch, Find]:
    visible = sorted(
        (p for p in timeline.posts.values() if not p.retracted and (p.key_event or not key_events)),
        key=lambda p: p.sequence,
    )

    async def fetch(order: Order, past: int | None, limit: int) -> Sequence[PostState]:
        if order == "newest":
            return [p for p in reversed(visible) if past is None or p.sequence < past][:limit]
        return [p for p in visible if past is None or p.sequence > past][:limit]

    async def find(post_id: str) -> PostState | None:
        return timeline.posts.get(post_id)

    return fetch, find


def _latest_of(timeline: Timeline) -> str | None:
    visible = [p for p in timeline.posts.values() if not p.retracted]
    return max(visible, key=lambda p: p.sequence).id if visible else None


async def _as_of_version(conn: Connection, coverage_id: str, as_of: str) -> int:
    if re.fullmatch(r"[0-9]{1,10}", as_of):
        version = int(as_of)
        if not 1 <= version < 2**31:
            raise InvalidAsOf("as_of must be a version from 1, or an RFC 3339 time")
        return version
    try:
        moment = datetime.fromisoformat(as_of)
        if moment.tzinfo is None:
            raise InvalidAsOf("as_of must carry a UTC offset, e.g. 2022-11-10T14:32:00Z")
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidAsOf("as_of must be a version number or an RFC 3339 time with its offset") from exc
    then = await events.version_at(conn, coverage_id, moment)
    if then is None:
        raise CoverageNotFound(f"coverage {coverage_id!r} was not open yet at {as_of}", coverage_id=coverage_id)
    return then
