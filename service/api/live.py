"""What this process knows without asking the database: each coverage's latest version, kept current by
the LISTEN connection, and rendered read answers keyed by (coverage, version, variant)."""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import brotli


class CoverageVersions:
    """Latest known version per coverage, trusted only while the LISTEN connection is up.

    Every (re)connection starts a new generation and forgets what it knew, since notifications may have
    been missed meanwhile; a version read from the database is accepted only within the generation that
    was current when the read began.
    """

    def __init__(self, on_advance: Callable[[str, int], None] | None = None) -> None:
        self._on_advance = on_advance
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._due: dict[int, set[asyncio.Future[None]]] = {}
        """Waiters by the tick (`TICK`s since the loop's epoch) at which their time is up."""
        self._ticker: asyncio.TimerHandle | None = None
        self._ticker_loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self.epoch = 0
        """Identifies the reader tables' current build; a rebuild that swaps them changes it."""
        self.listening = False
        self.closing = asyncio.Event()

    def known(self, coverage_id: str) -> int | None:
        return self._versions.get(coverage_id) if self.listening else None

    def observe(self, coverage_id: str, version: int, generation: int | None = None) -> None:
        if not self.listening or (generation is not None and generation != self.generation):
            return
        if version > self._versions.get(coverage_id, 0):
            self._versions[coverage_id] = version
            self._wake(coverage_id)
            if self._on_advance is not None:
                self._on_advance(coverage_id, version)

    def connected(self, listening: bool, epoch: int) -> None:
        """The LISTEN connection came up (with the read model's epoch), went down, or saw a rebuild."""
        self.generation += 1
        self.listening = listening
        self.epoch = epoch
        self._versions.clear()
        self._wake_all()

    def close(self) -> None:
        """The process is stopping: every long poll and stream ends now."""
        self.closing.set()
        self._wake_all()

    def _wake_all(self) -> None:
        for coverage_id in list(self._waiters):
            self._wake(coverage_id, at_once=True)

    def _wake(self, coverage_id: str, at_once: bool = False) -> None:
        """Release this coverage's waiters: `WAKE_DELAY` after a change, at once when the listener reconnects or the
        process closes. The version is known at once either way: a reader that asks meanwhile sees the change."""
        waiters = self._waiters.pop(coverage_id, None)
        if not waiters:
            return
        if at_once:
            _release_slices(list(waiters), 0)
        else:
            asyncio.get_running_loop().call_later(WAKE_DELAY, _release_slices, list(waiters), 0)

    def start_wait(self, coverage_id: str, seconds: float) -> tuple[asyncio.Future[None], int]:
        """A future done when this coverage may have changed, the listener reconnects, the process closes or
        `seconds` pass, and its place in the wheel; the waiter awaits it, then calls `end_wait` with both.

        One future per waiter, nothing more, and no coroutine of its own: ten thousand streams wait at once, and
        what each wait allocates is what the garbage collector must walk, and what an open stream costs. The time
        limit is a place in the shared `_due` wheel rather than a timer of its own (a uvloop timer is half a KiB);
        a wait ends at most a `TICK` or two after `seconds`, never before.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if seconds <= 0 or self.closing.is_set():
            waiter.set_result(None)
            return waiter, 0
        self._waiters.setdefault(coverage_id, set()).add(waiter)
        if self._ticker_loop is not loop:  # another event loop (tests): the last one's waits ended with it
            self._due.clear()
            self._ticker, self._ticker_loop = None, loop
        tick = math.ceil((loop.time() + seconds) / TICK)
        self._due.setdefault(tick, set()).add(waiter)
        if self._ticker is None:
            self._ticker = loop.call_later(TICK, self._tick, loop)
        return waiter, tick

    def end_wait(self, coverage_id: str, waiter: asyncio.Future[None], tick: int) -> None:
        """The wait is over, however it ended: it leaves the wheel and the coverage's waiters now, not at its time."""
        for waiters in (self._due.get(tick), self._waiters.get(coverage_id)):
            if waiters is not None:
                waiters.discard(waiter)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every `TICK` while anyone waits: release the waits whose time is up."""
        now = math.floor(loop.time() / TICK)
        for tick in [tick for tick in self._due if tick <= now]:
            _release_slices(list(self._due.pop(tick)), 0)
        self._ticker = loop.call_later(TICK, self._tick, loop) if self._due else None


TICK = 0.1
"""Seconds between checks of the waits' time limits (see `CoverageVersions.start_wait`)."""


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


WAKE_DELAY = 0.005
"""Seconds between a change becoming known and its waiting readers waking. The write that made it is answered
meanwhile: its commit's notification reaches this process as the write returns, and the streams it wakes would
otherwise take turns ahead of the write's own remaining awaits (bench.fanout: the publish's p99 went from 1.6-3.1
times its value with no subscriber to 1.0-1.6 times at 2,000 and 10,000 streams). Changes that come within it wake
each reader once, for all of them."""

WAKE_SLICE = 32
"""Waiters woken per turn of the event loop. Waking ten thousand streams at once would queue their deliveries
ahead of everything else: a publish arriving then would wait behind all of them at each of its awaits."""


def _release_slices(waiters: list[asyncio.Future[None]], start: int) -> None:
    for waiter in waiters[start : start + WAKE_SLICE]:
        _release(waiter)
    if start + WAKE_SLICE < len(waiters):
        asyncio.get_running_loop().call_soon(_release_slices, waiters, start + WAKE_SLICE)


T = TypeVar("T")


class SharedReads:
    """Identical reads in flight at once share one database round trip: the first caller reads, the rest await it.

    After a change, every stream and long poll of a coverage wakes in the same loop iteration and asks for the
    same thing (the changes since the same cursor, at the same version), so the audience costs one read.
    """

    def __init__(self, keep: int = 256) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._recent: OrderedDict[Hashable, Any] = OrderedDict()
        """Answers of the latest reads: streams woken a slice at a time ask after the read has finished."""
        self._keep = keep
        self.reads = 0
        """Reads actually made (the rest were shared): for tests and metrics."""

    def forget(self, coverage_id: str) -> None:
        """Drop the kept answers of a coverage (its content was erased)."""
        for key in [k for k in self._recent if isinstance(k, tuple) and coverage_id in k[:2]]:
            del self._recent[key]

    async def run(self, key: Hashable | None, read: Callable[[], Awaitable[T]]) -> T:
        """`key` names everything the answer depends on, the coverage version included; None reads alone."""
        if key is None:
            return await read()
        if key in self._recent:
            done: T = self._recent[key]
            return done
        future = self._inflight.get(key)
        if future is not None:
            result: T = await asyncio.shield(future)
            return result
        future = self._inflight[key] = asyncio.get_running_loop().create_future()
        self.reads += 1
        try:
            value = await read()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: nobody may be waiting, and asyncio would log it as lost
            raise
        else:
            future.set_result(value)
            self._recent[key] = value
            if len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            return value
        finally:
            del self._inflight[key]


class Rendered:
    """One rendered answer and its compressed forms, each made once, the first time a client accepts it."""

    __slots__ = ("_encoded", "body", "etag", "media_type")

    def __init__(self, body: bytes, etag: str, media_type: str = "application/json") -> None:
        self.body = body
        self.etag = etag
        self.media_type = media_type
        self._encoded: dict[str, bytes] = {}

    def encoded(self, coding: str) -> bytes:
        found = self._encoded.get(coding)
        if found is None:
            found = self._encoded[coding] = compress(self.body, coding)
        return found


def compress(body: bytes, coding: str) -> bytes:
    if coding == "br":
        compressed: bytes = brotli.compress(body, quality=5)
        return compressed
    return gzip.compress(body, compresslevel=6, mtime=0)


class RenderedPages:
    """A bounded LRU of rendered answers. An entry states how a coverage renders at one version; when the
    coverage moves on, its older entries leave the LRU at once rather than age out. The newest superseded
    answer of each (coverage, variant) is kept aside, bounded the same way: under overload the edge may serve it
    while a fresh one renders (`previous`)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int, str], Rendered] = OrderedDict()
        self._by_coverage: dict[str, set[tuple[str, int, str]]] = {}
        self._previous: OrderedDict[tuple[str, str], tuple[int, float, Rendered]] = OrderedDict()
        """(coverage, variant) -> (its version; when it was superseded, on the monotonic clock; the answer)."""

    def get(self, key: tuple[str, int, str]) -> Rendered | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def previous(self, coverage_id: str, variant: str, within: float) -> Rendered | None:
        """The newest answer rendered for this variant before the coverage moved on, if it was still current
        `within` seconds ago: no staler than a shared cache may serve it under our Cache-Control."""
        found = self._previous.get((coverage_id, variant))
        if found is None or time.monotonic() - found[1] > within:
            return None
        return found[2]

    def put(self, key: tuple[str, int, str], rendered: Rendered) -> None:
        self._entries[key] = rendered
        self._entries.move_to_end(key)
        self._by_coverage.setdefault(key[0], set()).add(key)
        while len(self._entries) > self.capacity:
            oldest, _ = self._entries.popitem(last=False)
            self._by_coverage.get(oldest[0], set()).discard(oldest)

    def drop_older(self, coverage_id: str, version: int) -> None:
        keys = self._by_coverage.get(coverage_id, set())
        for key in [k for k in keys if k[1] < version]:
            keys.discard(key)
            rendered = self._entries.pop(key, None)
            aside = (coverage_id, key[2])
            kept = self._previous.get(aside)
            if rendered is not None and (kept is None or kept[0] < key[1]):
                self._previous[aside] = (key[1], time.monotonic(), rendered)
                self._previous.move_to_end(aside)
        while len(self._previous) > self.capacity:
            self._previous.popitem(last=False)

    def forget(self, coverage_id: str) -> None:
        """Drop everything rendered of a coverage (its content was erased)."""
        for key in self._by_coverage.pop(coverage_id, set()):
            self._entries.pop(key, None)
        for aside in [a for a in self._previous if a[0] == coverage_id]:
            del self._previous[aside]

    def __len__(self) -> int:
        return len(self._entries)
