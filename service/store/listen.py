"""The dedicated LISTEN connection: one per process, outside the pool, re-listening after the database restarts.

Appends send `NOTIFY liveline_events '<coverage_id>:<version>'` in their transaction, so a notification
arrives only after the commit, in every process listening on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from service.store.events import ERASED, NOTIFY_CHANNEL, REBUILT


async def read_model_epoch(conn: asyncpg.Connection) -> int:
    """Changes whenever a rebuild swaps the reader tables (their OID is new), so validators change too."""
    epoch = await conn.fetchval("SELECT 'coverages'::regclass::oid::bigint")
    return int(epoch)


log = logging.getLogger("liveline.listen")


class ChangeListener:
    def __init__(
        self,
        dsn: str,
        on_change: Callable[[str, int], None],
        on_connected: Callable[[bool, int], None],
        on_erased: Callable[[str], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._on_connected = on_connected
        self._on_erased = on_erased
        self._epoch_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="liveline-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                # Only now is nothing missed: what was learnt before this moment may be stale.
                self._on_connected(True, await read_model_epoch(conn))
                backoff = 0.2
                while not conn.is_closed():
                    # The termination listener is the fast path; the ping finds a half-open socket.
                    waits = {asyncio.ensure_future(closed.wait()), asyncio.ensure_future(self._epoch_changed.wait())}
                    await asyncio.wait(waits, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
                    for waiting in waits:
                        waiting.cancel()
                    if conn.is_closed():
                        break
                    if self._epoch_changed.is_set():
                        self._epoch_changed.clear()
                        self._on_connected(True, await read_model_epoch(conn))
                    await conn.fetchval("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", type(exc).__name__, backoff)
            finally:
                self._on_connected(False, 0)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        if payload == REBUILT:
            self._epoch_changed.set()
            return
        if str(payload).startswith(ERASED):
            if self._on_erased is not None:
                self._on_erased(str(payload)[len(ERASED) :])
            return
        coverage_id, _, version = str(payload).rpartition(":")
        if coverage_id and version.isdigit():
            self._on_change(coverage_id, int(version))
