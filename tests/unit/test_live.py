"""The in-memory side of cheap polls: versions only move forward, and rendered pages of older versions go."""

from __future__ import annotations

import asyncio

from service.api.changes import wait_for_change
from service.api.live import WAKE_DELAY, WAKE_SLICE, CoverageVersions, Rendered, RenderedPages, SharedReads
from service.api.streams import Client


def test_versions_move_forward_and_are_trusted_only_while_listening() -> None:
    versions = CoverageVersions()
    versions.observe("k", 3)
    assert versions.known("k") is None, "not listening yet: nothing is trusted"
    versions.connected(True, epoch=7)
    versions.observe("k", 3)
    versions.observe("k", 2)
    assert versions.known("k") == 3
    stale_generation = versions.generation
    versions.connected(True, epoch=8)
    versions.observe("k", 5, stale_generation)
    assert versions.known("k") is None, "a read that began before the reconnect is not trusted"
    assert versions.epoch == 8


def test_pages_are_bounded_and_dropped_when_their_coverage_moves_on() -> None:
    pages = RenderedPages(capacity=3)
    versions = CoverageVersions(on_advance=pages.drop_older)
    versions.connected(True, epoch=1)
    for version in (1, 2):
        pages.put(("k", version, "timeline"), Rendered(b"x", f'"{version}"'))
    pages.put(("other", 1, "timeline"), Rendered(b"y", '"o"'))
    versions.observe("k", 2)
    assert pages.get(("k", 1, "timeline")) is None and pages.get(("k", 2, "timeline")) is not None
    for n in range(5):
        pages.put(("other", 2 + n, "timeline"), Rendered(b"z", '"z"'))
    assert len(pages) == 3


def listening(*coverage_ids: str) -> CoverageVersions:
    """Versions as a process listening for changes has them: each coverage known at version 1, so a wait for a
    change past 1 needs no database."""
    versions = CoverageVersions()
    versions.connected(True, epoch=1)
    for coverage_id in coverage_ids:
        versions.observe(coverage_id, 1)
    return versions


async def until_woken(woken: list[int]) -> float:
    """Loop turns until the first waiter has woken; the seconds that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not woken:
        assert loop.time() - started < 5, "nobody woke"
        await asyncio.sleep(0)
    return loop.time() - started


async def test_waiters_wake_a_moment_after_a_change_once_for_changes_within_it() -> None:
    """The write that made a change is answered before the streams it wakes take their turns (WAKE_DELAY)."""
    versions = listening("k")
    woken: list[int] = []

    async def waiter(n: int) -> None:
        woken.append(await wait_for_change(versions, None, "k", 1, 30))  # type: ignore[arg-type]

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    versions.observe("k", 2)
    assert versions.known("k") == 2, "a reader that asks now sees the change"
    versions.observe("k", 3)
    took = await until_woken(woken)
    assert took >= WAKE_DELAY * 0.9, took
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert woken == [3, 3, 3], "woken once, after both changes, and each sees the newer"


async def test_closing_wakes_waiters_at_once() -> None:
    versions = listening("k")
    woken: list[int] = []

    async def waiter() -> None:
        await wait_for_change(versions, None, "k", 1, 30)  # type: ignore[arg-type]
        woken.append(1)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    versions.close()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert woken == [1], "closing does not wait for WAKE_DELAY"
    await task


async def test_a_change_wakes_every_waiter_a_slice_at_a_time_and_close_wakes_the_rest() -> None:
    versions = listening("k", "other")
    woken: list[int] = []

    async def waiter(n: int, coverage_id: str) -> None:
        await wait_for_change(versions, None, coverage_id, 1, 30)  # type: ignore[arg-type]
        woken.append(n)

    tasks = [asyncio.create_task(waiter(n, "k")) for n in range(1000)]
    others = [asyncio.create_task(waiter(-1, "other")) for _ in range(3)]
    await asyncio.sleep(0)
    versions.observe("k", 2)
    await until_woken(woken)
    assert 0 < len(woken) <= 2 * WAKE_SLICE, "not all at once: other work gets a turn between slices"
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sorted(woken) == list(range(1000))
    versions.close()
    await asyncio.wait_for(asyncio.gather(*others), 5)


async def test_a_wait_ends_when_its_time_is_up_or_its_client_leaves_and_leaves_nothing_behind() -> None:
    """Waits share one ticker instead of a timer each: each still ends at its own time (never before it), a
    client's leaving ends its wait at once, and a wait however ended is dropped from the wheel and the coverage's
    waiters at once, not kept until its time."""
    versions = listening("k")
    loop = asyncio.get_running_loop()

    async def timed(seconds: float) -> float:
        began = loop.time()
        await wait_for_change(versions, None, "k", 1, seconds)  # type: ignore[arg-type]
        return loop.time() - began

    short, long = asyncio.create_task(timed(0.2)), asyncio.create_task(timed(0.6))
    waited = await asyncio.wait_for(short, 5)
    assert waited >= 0.2 and not long.done(), "each wait ends at its own time"
    assert await asyncio.wait_for(long, 5) >= 0.6
    disconnect: asyncio.Future[None] = loop.create_future()

    async def receive() -> dict[str, str]:
        await disconnect
        return {"type": "http.disconnect"}

    client = Client(receive)  # type: ignore[arg-type]
    left = asyncio.create_task(wait_for_change(versions, None, "k", 1, 30, client))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert client.waiter is not None and not left.done()
    disconnect.set_result(None)
    assert await asyncio.wait_for(left, 1) == 1, "the client left: the wait ends at once, with nothing new"
    assert client.left and client.waiter is None
    assert not any(versions._due.values()) and not any(versions._waiters.values())
    woken = [asyncio.create_task(timed(30)) for _ in range(100)]
    await asyncio.sleep(0)
    versions.observe("k", 2)
    await asyncio.wait_for(asyncio.gather(*woken), 5)
    assert not any(versions._due.values()), "ended waits are not kept until their time"
    cancelled = asyncio.create_task(timed(30))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert not any(versions._due.values()) and not any(versions._waiters.values()), "nor cancelled ones"


async def test_identical_reads_share_one_round_trip_and_its_answer() -> None:
    shared = SharedReads()
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    answers = await asyncio.gather(*(shared.run(("k", 1), read) for _ in range(500)))
    assert answers == [1] * 500 and calls == 1
    assert await shared.run(("k", 1), read) == 1 and calls == 1, "a late asker gets the finished answer"
    assert await shared.run(("k", 2), read) == 2 and calls == 2, "another version is another read"
    assert await shared.run(None, read) == 3, "no key: no sharing"


async def test_a_wait_ends_only_past_the_cursor_even_when_the_process_lags_behind_it() -> None:
    versions = CoverageVersions()
    versions.connected(True, epoch=1)
    versions.observe("k", 3)  # a reader already saw version 5; this process has heard of 3 so far
    waiting = asyncio.create_task(wait_for_change(versions, None, "k", 5, 30))  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done(), "behind the cursor is not a change: no busy loop"
    versions.observe("k", 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    versions.observe("k", 6)
    assert await asyncio.wait_for(waiting, 5) == 6
