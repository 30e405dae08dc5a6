"""The asyncpg pool, with jsonb encoded and decoded by msgspec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import msgspec

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection

# `Connection`: one of its own or one borrowed from the pool; the store takes either.

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, a missing Unix socket (the embedded server is down), DNS failure, connect timeout
    asyncpg.InterfaceError,  # a connection or the pool closed under us
    # A connection a crash interrupted mid-operation can come back from the pool confused (MagicStack/asyncpg#1069);
    # its failed use makes the pool's reset fail too, and the pool then closes it.
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: admin or crash shutdown, cannot connect now, statement timeout
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    asyncpg.ReadOnlySQLTransactionError,  # a standby after a failover
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure: safe to retry
)
"""Database faults: the service's outage, never the client's mistake; answered 503 with Retry-After."""

DATABASE_FAULTS: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)
"""Everything a read can meet while the database restarts: what a stream or a readiness probe rides out."""

_encoder = msgspec.json.Encoder()


_JSONB_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then the JSON text


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _encoder.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in msgspec, in binary format so COPY (bulk import, rebuild) can carry it too."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


async def create_pool(
    dsn: str,
    min_size: int = 1,
    max_size: int = 10,
    on_query: Callable[[Any], None] | None = None,
    timeouts: dict[str, str] | None = None,
    *,
    single_statements: bool = False,
) -> asyncpg.Pool:
    """The pool; `on_query` is called after every statement any of its connections runs; `timeouts` are
    PostgreSQL settings (statement_timeout, lock_timeout, idle_in_transaction_session_timeout) for its sessions.

    `single_statements`: a pool for reads that each run one statement and leave no session state behind (no
    SET, LISTEN, cursor or session lock), borrowed through `one_statement`. It skips asyncpg's reset query on
    release (a round trip, a fifth of a rendered timeline page's cost); asyncpg still rolls back any transaction
    left open.
    """

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if on_query is not None:
            conn.add_query_logger(on_query)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        server_settings=timeouts or {},
        reset=_session_untouched if single_statements else None,
        # A page read's connection is lent many thousand times a second: no idle timer re-armed at each return.
        max_inactive_connection_lifetime=0 if single_statements else 300.0,
    )
    assert pool is not None
    return pool


async def _session_untouched(_conn: asyncpg.Connection) -> None:
    """The reset of a `single_statements` pool: nothing to undo."""


@asynccontextmanager
async def one_statement(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A connection for one statement. One that met a database fault is closed rather than put back: a pool that
    skips the reset query never tests it again (after a crash a connection can be left confused but open)."""
    async with pool.acquire() as conn:
        try:
            yield conn
        except DATABASE_FAULTS:
            conn.terminate()
            raise


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A read-only REPEATABLE READ transaction: several statements that see one moment of the database."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # LOCK takes no snapshot: if a rebuild is swapping the reader tables, wait for it here, so the
        # snapshot (taken by the first query) sees the swapped tables complete.
        await conn.execute("LOCK TABLE coverages, posts IN ACCESS SHARE MODE")
        yield conn
