"""API tokens: shown once when made, stored only as a SHA-256 hash, revocable by name."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Literal

import asyncpg
from msgspec import Struct

from service.store.pool import Connection, RowSource

Role = Literal["editor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("editor", "auditor", "admin")
_PREFIX = "ll_"


class TokenHolder(Struct, frozen=True):
    name: str
    role: Role


class TokenInfo(Struct, frozen=True):
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenNameTaken(Exception):
    pass


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create_token(conn: Connection, name: str, role: Role, expires_at: datetime | None = None) -> str:
    token = _PREFIX + secrets.token_urlsafe(32)
    try:
        await conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
            name,
            role,
            _digest(token),
            expires_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise TokenNameTaken(f"an active token named {name!r} exists; revoke it first") from exc
    return token


async def list_tokens(conn: Connection) -> list[TokenInfo]:
    rows = await conn.fetch(
        "SELECT name, role, created_at, revoked_at, last_used_at, expires_at FROM api_tokens ORDER BY created_at, id"
    )
    return [
        TokenInfo(r["name"], r["role"], r["created_at"], r["revoked_at"], r["last_used_at"], r["expires_at"])
        for r in rows
    ]


async def revoke_token(conn: Connection, name: str) -> bool:
    status = await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name)
    return status != "UPDATE 0"


async def find_holder(rows: RowSource, token: str) -> TokenHolder | None:
    if not token.startswith(_PREFIX):
        return None
    row = await rows.fetchrow(_FIND, _digest(token))
    return None if row is None else TokenHolder(row["name"], row["role"])


# Every request checks the table, so a revocation or an expiry holds on every process at once. Last use is noted
# at most once a minute per token, in the same statement: not a write per request.
_FIND = """
WITH found AS (
    SELECT id, name, role, last_used_at FROM api_tokens
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), noted AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id IN (SELECT id FROM found WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT name, role FROM found
"""
