"""Write use-cases: lock the coverage, decide against current state, append, project, answer — one transaction.

The API and the CLI call these; the rules themselves live in `domain.commands`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from msgspec import Struct

from service.domain.errors import IdempotencyKeyReused
from service.domain.events import EventData, Metadata
from service.domain.state import CoverageState, PostState
from service.projections import read_model
from service.store import events, idempotency, locks
from service.store.idempotency import StoredAnswer
from service.store.pool import Connection


class Change(Struct, frozen=True):
    """One event to append, and the post it concerns (None for coverage-wide events)."""

    post_id: str | None
    data: EventData


class Answer(Struct, frozen=True):
    """What the client gets back: kept verbatim for idempotent retries."""

    status: int
    body: bytes
    headers: dict[str, str] = {}


class Idempotency(Struct, frozen=True):
    key: str
    fingerprint: str
    """A digest of method, path and canonical request body: the same key with another request is refused."""


Decide = Callable[[CoverageState | None, PostState | None], Sequence[Change]]
Respond = Callable[[Connection, CoverageState | None, PostState | None], Awaitable[Answer]]


async def execute(
    pool: asyncpg.Pool,
    *,
    coverage_id: str,
    post_id: str | None,
    metadata: Metadata,
    idempotency_key: Idempotency | None,
    decide: Decide,
    respond: Respond,
    wait: float | None = None,
) -> tuple[Answer, int | None]:
    """Run one command. `decide` sees the coverage and the post `post_id` names, as of after the lock.

    Returns the answer and the coverage version it leaves (None for a replayed idempotent answer). `wait` bounds
    the wait for a connection: under overload a write is shed (TimeoutError, a 503) instead of queueing.
    """
    async with pool.acquire(timeout=wait) as conn, conn.transaction():
        if idempotency_key is not None:
            await idempotency.lock_key(conn, metadata.actor, idempotency_key.key)
            earlier = await idempotency.find_answer(conn, metadata.actor, idempotency_key.key)
            if earlier is not None:
                if earlier.fingerprint != idempotency_key.fingerprint:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency_key.key!r} was first used for another request",
                        idempotency_key=idempotency_key.key,
                    )
                return Answer(earlier.status, earlier.body, earlier.headers), None
        # Round trips are what a write costs the process most (asyncpg and the event loop per statement): the locks
        # are one statement, and what the write decides on another.
        await locks.enter_coverage(conn, coverage_id)
        coverage, post, head = await read_model.load_for_write(conn, coverage_id, post_id)
        for change in decide(coverage, post):
            if change.post_id is not None and (post is None or post.id != change.post_id):
                post = await read_model.load_post(conn, change.post_id)
            recorded = await events.append(conn, coverage_id, change.post_id, change.data, metadata, head)
            head = events.head_after(recorded)
            coverage, post = await read_model.project(conn, coverage, post, recorded)
        answer = await respond(conn, coverage, post)
        if idempotency_key is not None:
            stored = StoredAnswer(idempotency_key.fingerprint, answer.status, answer.headers, answer.body)
            await idempotency.save_answer(conn, metadata.actor, idempotency_key.key, stored)
        return answer, coverage.version if coverage else None
