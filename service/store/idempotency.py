"""Idempotency records: the first answer to (actor, Idempotency-Key), kept with the request's fingerprint."""

from __future__ import annotations

from msgspec import Struct

from service.store import locks
from service.store.pool import Connection


class StoredAnswer(Struct, frozen=True):
    fingerprint: str
    status: int
    headers: dict[str, str]
    body: bytes


async def lock_key(conn: Connection, actor: str, key: str) -> None:
    """Two requests with the same key wait for each other, so only the first one appends."""
    await locks.idempotency_key(conn, actor, key)


async def find_answer(conn: Connection, actor: str, key: str) -> StoredAnswer | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, status, headers, body FROM idempotency_records WHERE actor = $1 AND key = $2",
        actor,
        key,
    )
    if row is None:
        return None
    return StoredAnswer(row["fingerprint"], row["status"], row["headers"], bytes(row["body"]))


async def save_answer(conn: Connection, actor: str, key: str, answer: StoredAnswer) -> None:
    await conn.execute(
        "INSERT INTO idempotency_records (actor, key, fingerprint, status, headers, body) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        key,
        answer.fingerprint,
        answer.status,
        answer.headers,
        answer.body,
    )
