"""The asyncpg pool, with jsonb encoded and decoded by msgspec; and `Statements`, connections lent a statement at a
time for the hot reads."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import asyncpg
import msgspec
from asyncpg.prepared_stmt import PreparedStatement

from service.store.together import Together

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection

# `Connection`: one of its own or one borrowed from the pool; the store takes either.


class RowSource(Protocol):
    """Where a read of one row at a time is made: a connection, a pool, or `Statements`."""

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...


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
) -> asyncpg.Pool:
    """The pool; `on_query` is called after every statement any of its connections runs; `timeouts` are
    PostgreSQL settings (statement_timeout, lock_timeout, idle_in_transaction_session_timeout) for its sessions."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if on_query is not None:
            conn.add_query_logger(on_query)

    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init, server_settings=timeouts or {}
    )
    assert pool is not None
    return pool


CONNECT_TIMEOUT = 5.0
"""Seconds `Statements` waits for a new connection."""


class _Lent(asyncpg.Connection):
    """A `Statements` connection, with the statements it has prepared: they live and go with it."""

    __slots__ = ("prepared",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: dict[str, PreparedStatement] = {}


class Statements:
    """Up to `size` connections, each lent for one statement and given back as soon as its row is read: the
    edge's timeline renders and every request's token lookup, thousands a second.

    Hand-written, not an `asyncpg.Pool`: borrowing from one and giving back cost 45-60 µs of CPU here (its
    connection proxy, its queue, the task `asyncio.shield` starts at every release, the reset query or its
    stand-in), and asyncpg's query logger, which would count the statements, 20 µs more; the statement itself
    costs 30 µs. A statement leaves nothing behind in the session (no transaction, SET, LISTEN or cursor), so
    a connection needs no reset between lends. One whose statement did not end normally (a fault, a timeout, a
    cancelled request) is closed rather than lent again: its state is not known, and nothing else would test it.

    Each connection prepares each of these few statements once and runs the prepared statement after that:
    `Connection.fetchrow` would look its statement up in asyncpg's cache through one more coroutine every time
    (a sixth of the statement's instructions in the client, counted with callgrind).
    """

    def __init__(self, dsn: str, size: int, settings: dict[str, str], counted: Callable[[], None]) -> None:
        self._dsn, self._size, self._counted = dsn, size, counted
        # Generic plans: these few statements are prepared once per connection and run thousands of times a
        # second, and each of them is an index scan whatever its parameters. Left to choose, PostgreSQL planned
        # a timeline page afresh at every run (the generic plan's estimate, an average over coverages, looked
        # dearer than a custom one's): 0.25 ms of planning for 0.05 ms of execution in a 100,000-post table.
        self._settings = {"plan_cache_mode": "force_generic_plan", **settings}
        self._idle: list[_Lent] = []
        self._open = 0
        """Connections open or being opened, lent or idle."""
        self._waiting: deque[asyncio.Future[_Lent | None]] = deque()
        """Borrowers waiting for a connection, or for None: the right to open one."""
        self._closed = False
        self.together = Together(self.fetchrow, self.fetch)
        """The same reads, made as one statement when they queue."""

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        conn = await self._borrow()
        try:
            self._counted()
            statement = conn.prepared.get(query) or await self._prepare(conn, query)
            row = await statement.fetchrow(*args)
        except BaseException:
            self._lost(conn)
            raise
        self._give_back(conn)
        return row

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        # `fetchrow`'s twin, written out rather than shared through a helper taking the method: that would add a
        # coroutine to every statement of the hot path.
        conn = await self._borrow()
        try:
            self._counted()
            statement = conn.prepared.get(query) or await self._prepare(conn, query)
            rows = await statement.fetch(*args)
        except BaseException:
            self._lost(conn)
            raise
        self._give_back(conn)
        return rows

    async def _prepare(self, conn: _Lent, query: str) -> PreparedStatement:
        statement = conn.prepared[query] = await conn.prepare(query)
        return statement

    def _lost(self, conn: _Lent) -> None:
        """A statement did not end normally: the connection is closed, its slot freed."""
        conn.terminate()
        self._free_slot()

    async def close(self) -> None:
        self._closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the connections are closed"))
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        try:
            await asyncio.wait_for(asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True), 5)
        except TimeoutError:
            pass
        finally:  # what did not close gracefully (or in time, or before this was cancelled) is cut off
            for conn in idle:
                if not conn.is_closed():
                    conn.terminate()
        # Connections out on loan are closed as they come back (`_give_back`).

    async def _borrow(self) -> _Lent:
        if self._closed:
            raise asyncpg.InterfaceError("the connections are closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._open -= 1  # closed by the server while idle
        if self._open < self._size:
            self._open += 1
            return await self._connect()
        waiter: asyncio.Future[_Lent | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            # Handed something just as the borrower was cancelled: pass it on. (An exception set by `close()`
            # is dropped: the cancellation is what the borrower raises.)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._give_back(handed)
            raise
        if handed is not None:
            return handed
        if self._closed:  # the right to open one came before `close()`
            self._free_slot()
            raise asyncpg.InterfaceError("the connections are closed")
        return await self._connect()

    async def _connect(self) -> _Lent:
        """A new connection in a slot already counted in `_open`; the slot is freed if it cannot be opened."""
        try:
            # A short wait: token lookups borrow here, so a database that does not answer must fail requests in
            # seconds (503), not in asyncpg's default minute per waiting borrower.
            conn = await asyncpg.connect(
                self._dsn, server_settings=self._settings, timeout=CONNECT_TIMEOUT, connection_class=_Lent
            )
            try:
                await init_connection(conn)
            except BaseException:
                conn.terminate()
                raise
        except BaseException:
            self._free_slot()
            raise
        return conn

    def _give_back(self, conn: _Lent) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._closed:
            conn.terminate()
            self._open -= 1
        else:
            self._idle.append(conn)

    def _free_slot(self) -> None:
        """A connection is gone: a waiting borrower may open another in its slot."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1


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
