"""What this process knows without asking the database: each coverage's latest version, kept current by
the LISTEN connection, and rendered read answers keyed by (coverage, version, variant)."""

from __future__ import annotations

import asyncio
import gzip
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
        self._wakeups: dict[str, asyncio.Event] = {}
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
        for coverage_id in list(self._wakeups):
            self._wake(coverage_id)

    def _wake(self, coverage_id: str) -> None:
        event = self._wakeups.pop(coverage_id, None)
        if event is not None:
            event.set()

    async def wait(self, coverage_id: str, seconds: float) -> None:
        """Until this coverage may have changed, the listener reconnects, the process closes, or `seconds`."""
        if seconds <= 0 or self.closing.is_set():
            return
        event = self._wakeups.setdefault(coverage_id, asyncio.Event())
        closing = asyncio.ensure_future(self.closing.wait())
        changed = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({closing, changed}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            changed.cancel()


T = TypeVar("T")


class SharedReads:
    """Identical reads in flight at once share one database round trip: the first caller reads, the rest await it.

    After a change, every stream and long poll of a coverage wakes in the same loop iteration and asks for the
    same thing (the changes since the same cursor, at the same version), so the audience costs one read.
    """

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self.reads = 0
        """Reads actually made (the rest were shared): for tests and metrics."""

    async def run(self, key: Hashable | None, read: Callable[[], Awaitable[T]]) -> T:
        if key is None:
            return await read()
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
    coverage moves on, its older entries are dropped at once rather than left to age out."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, int, str], Rendered] = OrderedDict()
        self._by_coverage: dict[str, set[tuple[str, int, str]]] = {}

    def get(self, key: tuple[str, int, str]) -> Rendered | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, int, str], rendered: Rendered) -> None:
        self._entries[key] = rendered
        self._entries.move_to_end(key)
        self._by_coverage.setdefault(key[0], set()).add(key)
        while len(self._entries) > self._capacity:
            oldest, _ = self._entries.popitem(last=False)
            self._by_coverage.get(oldest[0], set()).discard(oldest)

    def drop_older(self, coverage_id: str, version: int) -> None:
        keys = self._by_coverage.get(coverage_id, set())
        for key in [k for k in keys if k[1] < version]:
            keys.discard(key)
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
