"""Changes after a cursor: the posts changed since (in the order they last changed), tombstones, pin and coverage,
read in one snapshot; and the long poll's wait for the next change, which holds no database connection."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import asyncpg
from msgspec import Struct

from service.api.coverages import find_coverage
from service.api.cursors import encode_cursor
from service.api.live import CoverageVersions
from service.api.unusable import InvalidCursor
from service.api.views import ChangesPage, coverage_view, post_view, tombstone
from service.domain.state import CoverageState, PostState
from service.projections import read_model
from service.store.pool import Connection


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


class Waiting(Protocol):
    """A stream's client, as its waits see it: once `left` is set, the wait it is in (`waiter`) is ended."""

    left: bool
    waiter: asyncio.Future[None] | None


async def wait_for_change(
    versions: CoverageVersions,
    pool: asyncpg.Pool,
    coverage_id: str,
    since: int,
    seconds: float,
    client: Waiting | None = None,
) -> int | None:
    """Wait until the coverage moves past `since`, `seconds` pass or the client leaves; returns the version then
    known.

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
        if known > since or remaining <= 0 or versions.closing.is_set() or (client is not None and client.left):
            return known
        waiter, tick = versions.start_wait(coverage_id, remaining if versions.listening else min(remaining, 1.0))
        if client is not None:
            client.waiter = waiter
        try:
            await waiter
        finally:
            if client is not None:
                client.waiter = None
            versions.end_wait(coverage_id, waiter, tick)
