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

from service.store.events import NOTIFY_CHANNEL

log = logging.getLogger("liveline.listen")


class ChangeListener:
    def __init__(
        self,
        dsn: str,
        on_change: Callable[[str, int], None],
        on_connected: Callable[[bool], None],
    ) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._on_connected = on_connected
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
            try:
                conn = await asyncpg.connect(self._dsn)
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                backoff = 0.2
                # Only now is nothing missed: what was learnt before this moment may be stale.
                self._on_connected(True)
                while not conn.is_closed():  # the termination listener is the fast path; this is the backstop
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), 1.0)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost (%s)", type(exc).__name__)
            finally:
                self._on_connected(False)
                if not conn.is_closed():
                    conn.terminate()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        coverage_id, _, version = str(payload).rpartition(":")
        if coverage_id and version.isdigit():
            self._on_change(coverage_id, int(version))
