"""The reader tables: one row per coverage and per post holding its folded state, and the queries on them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from service.domain.events import RecordedEvent
from service.domain.state import CoverageState, PostState, evolve
from service.store.events import HEAD_COLUMNS, HEAD_JOIN, Head, head_of
from service.store.pool import Connection, Statements

Order = Literal["newest", "oldest"]


class Tables(msgspec.Struct, frozen=True):
    """Which reader tables to write: the live ones, or the ones a rebuild fills beside them."""

    coverages: str = "coverages"
    posts: str = "posts"


LIVE = Tables()
NEXT = Tables("coverages_next", "posts_next")
COVERAGE_COLUMNS = ("id", "version", "started_at", "state")
POST_COLUMNS = ("id", "coverage_id", "sequence", "changed_version", "key_event", "retracted", "state")

# Table names come only from the two constants above, never from input.
_UPSERT_COVERAGE = """
INSERT INTO {coverages} (id, version, started_at, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
"""
_UPSERT_POST = """
INSERT INTO {posts} (id, coverage_id, sequence, changed_version, key_event, retracted, state)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE
SET changed_version = EXCLUDED.changed_version, key_event = EXCLUDED.key_event, retracted = EXCLUDED.retracted,
    state = EXCLUDED.state
"""

# A coverage's upsert and, with it, its post's: one round trip ($1-$4 the coverage, $5-$11 the post).
_POST_AFTER_COVERAGE = re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + 4}", _UPSERT_POST)
_UPSERT_BOTH = f"WITH coverage AS ({_UPSERT_COVERAGE}){_POST_AFTER_COVERAGE}"
# What a write decides on, read once its locks are held: the coverage, the post ($2, may be NULL) and the head of
# the coverage's stream.
_FOR_WRITE = f"""
SELECT (SELECT state FROM coverages WHERE id = $1) AS coverage, (SELECT state FROM posts WHERE id = $2) AS post,
       {HEAD_COLUMNS}
FROM (SELECT 1) AS always {HEAD_JOIN}
"""  # noqa: S608 (constant fragments)


def coverage_row(c: CoverageState) -> tuple[object, ...]:
    return (c.id, c.version, c.started_at, c)


def post_row(p: PostState) -> tuple[object, ...]:
    return (p.id, p.coverage_id, p.sequence, p.version, p.key_event, p.retracted, p)


async def load_coverage(conn: Connection, coverage_id: str, tables: Tables = LIVE) -> CoverageState | None:
    state = await conn.fetchval(f"SELECT state FROM {tables.coverages} WHERE id = $1", coverage_id)  # noqa: S608
    return None if state is None else msgspec.convert(state, CoverageState)


async def load_post(conn: Connection, post_id: str, tables: Tables = LIVE) -> PostState | None:
    state = await conn.fetchval(f"SELECT state FROM {tables.posts} WHERE id = $1", post_id)  # noqa: S608
    return None if state is None else msgspec.convert(state, PostState)


async def load_for_write(
    conn: Connection, coverage_id: str, post_id: str | None
) -> tuple[CoverageState | None, PostState | None, Head]:
    """The coverage, the post `post_id` names and the head of the coverage's stream, in one round trip; the caller
    holds the coverage's lock (`locks.enter_coverage`)."""
    row = await conn.fetchrow(_FOR_WRITE, coverage_id, post_id)
    assert row is not None
    coverage = None if row["coverage"] is None else msgspec.convert(row["coverage"], CoverageState)
    post = None if row["post"] is None else msgspec.convert(row["post"], PostState)
    return coverage, post, head_of(row)


async def project(
    conn: Connection,
    coverage: CoverageState | None,
    post: PostState | None,
    event: RecordedEvent,
    tables: Tables = LIVE,
) -> tuple[CoverageState, PostState | None]:
    """Fold one appended event into the reader tables, in the append's transaction."""
    coverage, post = evolve(coverage, post, event)
    if post is None:
        await conn.execute(_UPSERT_COVERAGE.format(coverages=tables.coverages), *coverage_row(coverage))
    else:
        upsert = _UPSERT_BOTH.format(coverages=tables.coverages, posts=tables.posts)
        await conn.execute(upsert, *coverage_row(coverage), *post_row(post))
    return coverage, post


class CoverageRow(msgspec.Struct, frozen=True):
    state: CoverageState
    latest_post_id: str | None


_LATEST_POST = """(SELECT p.id FROM posts p WHERE p.coverage_id = c.id AND NOT p.retracted
        ORDER BY p.sequence DESC LIMIT 1) AS latest_post_id"""
"""A coverage `c`'s latest post, a column of every read of a coverage."""

_WITH_LATEST = f"""
SELECT c.state,
       {_LATEST_POST}
FROM coverages c
"""  # noqa: S608 (constant fragments)


def _coverage_row(row: asyncpg.Record) -> CoverageRow:
    return CoverageRow(msgspec.convert(row["state"], CoverageState), row["latest_post_id"])


async def find_coverage(conn: Connection, coverage_id: str) -> CoverageRow | None:
    row = await conn.fetchrow(_WITH_LATEST + "WHERE c.id = $1", coverage_id)
    return None if row is None else _coverage_row(row)


async def list_coverages(conn: Connection, limit: int, after: tuple[datetime, str] | None) -> Sequence[CoverageRow]:
    """Newest first; `after` is the (started_at, id) of the last coverage of the previous page."""
    if after is None:
        rows = await conn.fetch(_WITH_LATEST + "ORDER BY c.started_at DESC, c.id DESC LIMIT $1", limit)
    else:
        rows = await conn.fetch(
            _WITH_LATEST + "WHERE (c.started_at, c.id) < ($2, $3) ORDER BY c.started_at DESC, c.id DESC LIMIT $1",
            limit,
            *after,
        )
    return [_coverage_row(row) for row in rows]


# One statement per (direction, filter), spelled out so each can use its partial index.
_TIMELINE = {
    (True, False): "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted "
    "AND sequence < $2 ORDER BY sequence DESC LIMIT $3",
    (False, False): "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted "
    "AND sequence > $2 ORDER BY sequence ASC LIMIT $3",
    (True, True): "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted AND key_event "
    "AND sequence < $2 ORDER BY sequence DESC LIMIT $3",
    (False, True): "SELECT state FROM posts WHERE coverage_id = $1 AND NOT retracted AND key_event "
    "AND sequence > $2 ORDER BY sequence ASC LIMIT $3",
}


def _direction(order: Order, past: int | None) -> tuple[bool, int]:
    """(newest first?, the sequence to continue past): the first page starts beyond either end."""
    newest = order == "newest"
    return newest, (2**31 - 1 if newest else 0) if past is None else past


async def timeline_posts(
    conn: Connection,
    coverage_id: str,
    *,
    limit: int,
    order: Order,
    past: int | None,
    key_events_only: bool,
) -> Sequence[PostState]:
    """Visible posts in publish order; `past` is the sequence the previous page stopped at."""
    newest, bound = _direction(order, past)
    rows = await conn.fetch(_TIMELINE[newest, key_events_only], coverage_id, bound, limit)
    return [msgspec.convert(row["state"], PostState) for row in rows]


async def no_post(_post_id: str) -> PostState | None:
    """A `find` for pages that centre on no post."""
    return None


class PageRead(msgspec.Struct, frozen=True):
    """A coverage with the first posts of a timeline page and its pinned post, as of one snapshot."""

    coverage: CoverageRow
    posts: list[PostState]
    pinned: PostState | None


class KnownPosts:
    """The newest state this process has read of each recent post: a timeline page re-reads only posts that
    changed since, so rendering a page after a change costs the change, not the page.

    A state is used only at exactly the version a page's statement names. Drop everything when the reader tables
    may have been rebuilt (the fold may have changed), and a coverage's posts when its content is erased. The
    oldest read leaves first (not the least used: a hit costs a dict lookup, no reordering); a post still on a
    page is then read again once.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._states: dict[str, PostState] = {}

    def at(self, ids: Sequence[str], versions: Sequence[int]) -> list[PostState] | None:
        """The states of these posts at these versions, or None when any is not held at its version."""
        states = self._states
        try:
            found = [states[post_id] for post_id in ids]
        except KeyError:
            return None
        # Two comprehensions rather than one loop that checks as it goes: a page is found whole far more often than
        # not, and this is on every render of a page (a third of the cost of the loop).
        return found if [state.version for state in found] == list(versions) else None

    def keep(self, states: Sequence[PostState]) -> None:
        for state in states:
            self._states.pop(state.id, None)
            self._states[state.id] = state
        while len(self._states) > self._capacity:
            del self._states[next(iter(self._states))]

    def __iter__(self) -> Iterator[PostState]:
        return iter(list(self._states.values()))

    def forget(self, coverage_id: str | None = None) -> None:
        """Every post, or one coverage's."""
        for post_id in [i for i, s in self._states.items() if coverage_id is None or s.coverage_id == coverage_id]:
            del self._states[post_id]


_PAGE = f"""
SELECT c.state::text,
       {_LATEST_POST},
       (SELECT {{what}} FROM posts p WHERE p.id = c.state->>'pinned_post_id') AS pinned,
       ARRAY({{posts}}) AS posts
FROM coverages c WHERE c.id = $1
"""  # noqa: S608 (constant fragments)
# Which posts a page shows, at which version: a small answer, checked against the posts this process holds. Two
# plain arrays rather than an array of rows: asyncpg decodes them for a fifth less (a composite makes a record each).
_PINNED_KEY = "(SELECT ROW(p.id, p.changed_version) FROM posts p WHERE p.id = c.state->>'pinned_post_id') AS pinned"
_PAGE_ARRAYS = """LATERAL (
    SELECT coalesce(array_agg(id ORDER BY sequence {direction}), '{{}}') AS ids,
           coalesce(array_agg(changed_version ORDER BY sequence {direction}), '{{}}') AS versions
    FROM ({posts}) shown
) page"""
"""The page's post ids and versions (`_KEYS`, `_KEYS_TOGETHER`), still to be formatted with `posts` and
`direction`."""
_KEYS = f"""
SELECT c.state::text,
       {_LATEST_POST},
       {_PINNED_KEY},
       page.ids, page.versions
FROM coverages c, {_PAGE_ARRAYS}
WHERE c.id = $1
"""  # noqa: S608 (constant fragments)
_PAGE_KEYS = {
    (newest, key_events): _KEYS.format(
        posts=query.replace("SELECT state ", "SELECT id, changed_version, sequence "),
        direction="DESC" if newest else "ASC",
    )
    for (newest, key_events), query in _TIMELINE.items()
}
# The same for several pages of one coverage at once (`Together`): the coverage's columns once (MATERIALIZED, or its
# subqueries would run again for every page), then each page from its own bound and limit, numbered in `n`.
_KEYS_TOGETHER = f"""
WITH c AS MATERIALIZED (
    SELECT c.id, c.state::text AS state,
           {_LATEST_POST},
           {_PINNED_KEY}
    FROM coverages c WHERE c.id = $1
)
SELECT q.n, c.state, c.latest_post_id, c.pinned, page.ids, page.versions
FROM c, unnest($2::int[], $3::int[]) WITH ORDINALITY AS q(bound, lim, n), {_PAGE_ARRAYS}
"""  # noqa: S608 (constant fragments)
_BATCHED_PARAMETERS = {"1": "c.id", "2": "q.bound", "3": "q.lim"}


def _batched(query: str) -> str:
    """A `_TIMELINE` page's posts, its parameters taken from the batch's columns."""
    posts = re.sub(r"\$(\d+)\b", lambda found: _BATCHED_PARAMETERS[found[1]], query)
    assert "$" not in posts, posts
    return posts.replace("SELECT state ", "SELECT id, changed_version, sequence ")


_PAGE_KEYS_TOGETHER = {
    (newest, key_events): _KEYS_TOGETHER.format(posts=_batched(query), direction="DESC" if newest else "ASC")
    for (newest, key_events), query in _TIMELINE.items()
}
# The page with its states, as JSON text decoded straight into their types (no dict built, then converted).
_PAGES = {
    key: _PAGE.format(what="p.state::text", posts=query.replace("SELECT state ", "SELECT state::text "))
    for key, query in _TIMELINE.items()
}
_COVERAGE = msgspec.json.Decoder(CoverageState)
_POST = msgspec.json.Decoder(PostState)


async def timeline_page(
    rows: Statements,
    coverage_id: str,
    *,
    limit: int,
    order: Order,
    past: int | None,
    key_events_only: bool,
    known: KnownPosts,
) -> PageRead | None:
    """What `find_coverage`, `timeline_posts` and the pinned post's `load_post` give, each answer from one
    statement (one statement sees one snapshot, so no transaction is needed to keep the three consistent).

    The first statement names the page's posts and their versions; when `known` holds them all, that is the whole
    read. Otherwise a second statement reads the page again with every state (a later snapshot, whole in itself).
    """
    newest, bound = _direction(order, past)
    which = newest, key_events_only
    row = await rows.together.fetchrow(_PAGE_KEYS[which], _PAGE_KEYS_TOGETHER[which], (coverage_id,), (bound, limit))
    if row is None:
        return None
    pinned_key, ids, versions = row["pinned"], row["ids"], row["versions"]
    held = known.at([*ids, pinned_key[0]], [*versions, pinned_key[1]]) if pinned_key else known.at(ids, versions)
    if held is not None:
        coverage = CoverageRow(_COVERAGE.decode(row["state"]), row["latest_post_id"])
        return PageRead(coverage, held[: len(ids)], held[-1] if pinned_key else None)
    row = await rows.fetchrow(_PAGES[which], coverage_id, bound, limit)
    if row is None:
        return None
    posts = [_POST.decode(state) for state in row["posts"]]
    pinned = None if row["pinned"] is None else _POST.decode(row["pinned"])
    known.keep([*posts, *([pinned] if pinned else [])])
    return PageRead(CoverageRow(_COVERAGE.decode(row["state"]), row["latest_post_id"]), posts, pinned)


async def changed_posts(conn: Connection, coverage_id: str, since: int, limit: int) -> Sequence[PostState]:
    """Posts whose last change (publish, edit, retraction) came after version `since`, oldest change first."""
    rows = await conn.fetch(
        "SELECT state FROM posts WHERE coverage_id = $1 AND changed_version > $2 ORDER BY changed_version LIMIT $3",
        coverage_id,
        since,
        limit,
    )
    return [msgspec.convert(row["state"], PostState) for row in rows]


async def coverage_version(conn: Connection, coverage_id: str) -> int | None:
    version = await conn.fetchval("SELECT version FROM coverages WHERE id = $1", coverage_id)
    return version if isinstance(version, int) else None
