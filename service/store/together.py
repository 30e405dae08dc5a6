"""Concurrent reads of one statement that differ only in some parameters, made as one statement when they queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

Record = asyncpg.Record


class _Wanted:
    """One read waiting: its own parameters, and the answer it is waiting for; a `_Batch` there means it leads one."""

    __slots__ = ("answer", "own")

    def __init__(self, own: tuple[Any, ...], answer: asyncio.Future[Record | _Batch | None]) -> None:
        self.own, self.answer = own, answer


class _Batch:
    __slots__ = ("members",)

    def __init__(self, members: list[_Wanted]) -> None:
        self.members = members


class _Group:
    """The reads of one statement with the same shared parameters: how many are running, and who waits."""

    __slots__ = ("running", "waiting")

    def __init__(self) -> None:
        self.running = 0
        self.waiting: list[_Wanted] = []


class Together:
    """Reads of one statement that share some parameters (a coverage) and differ in others (where a page starts,
    how long it is) go to the database one by one while fewer than `in_flight` of them are running; the reads that
    come while that many run wait, and go as one statement (of at most `most` reads, the first to come) when a
    running one ends. Everyone who came meanwhile rides on it, so under load the statements a second stop growing
    with the reads a second. Two in flight rather than one: while one batch's answer is on its way back, the next
    is read (one in flight served fewer pages a second in the benchmark, four no more than two).

    Why: most of a small read's cost is the statement's, not the rows'. A timeline page's keys cost 45 µs in the
    client and 56 µs in PostgreSQL one at a time, 11 and 20 µs a page eight at a time (a prepared statement
    against a 60-post coverage, a loop of 8,000 pages). Nothing in asyncpg does this (a pipeline still sends one
    statement per read), and a DataLoader-like library batches by event-loop tick, which adds a wait to every
    read, even on an idle server; this waits only when reads already queue.

    The batched statement takes the shared parameters, then each own parameter as an array (one element per read,
    in order), and answers a row per read that has one, numbered from 1 in a column `n`. Each read gets the row a
    statement of its own would have given (with that `n` beside its columns: read them by name), or None; a fault
    reaches every read of the batch. A read cancelled while it waits leaves the batch; a cancelled leader hands
    the batch on to the next read still waiting.
    """

    def __init__(
        self,
        one: Callable[..., Awaitable[Record | None]],
        many: Callable[..., Awaitable[Sequence[Record]]],
        in_flight: int = 2,
        most: int = 100,
    ) -> None:
        self._one, self._many, self._in_flight, self._most = one, many, in_flight, most
        self._groups: dict[tuple[str, tuple[Any, ...]], _Group] = {}

    async def fetchrow(self, query: str, batched: str, shared: tuple[Any, ...], own: tuple[Any, ...]) -> Record | None:
        """The row `query` answers to `*shared, *own`, read alone or in a batch of `batched`."""
        key = (batched, shared)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        if group.running < self._in_flight and not group.waiting:
            group.running += 1
            try:
                return await self._one(query, *shared, *own)
            finally:
                self._ended(key, group)
        me = _Wanted(own, asyncio.get_running_loop().create_future())
        group.waiting.append(me)
        try:
            answer = await me.answer
        except asyncio.CancelledError:
            answered = me.answer.done() and not me.answer.cancelled() and me.answer.exception() is None
            if answered and isinstance(led := me.answer.result(), _Batch):
                self._hand_on(key, group, led.members, me)  # made leader just as it was cancelled
            raise
        if not isinstance(answer, _Batch):
            return answer
        members = [wanted for wanted in answer.members if wanted is me or not wanted.answer.done()]
        try:
            if len(members) == 1:
                row = await self._one(query, *shared, *own)
                self._ended(key, group)
                return row
            columns = zip(*(wanted.own for wanted in members), strict=True)
            rows = await self._many(batched, *shared, *([*column] for column in columns))
            by_number = {row["n"]: row for row in rows}
        except asyncio.CancelledError:
            self._hand_on(key, group, members, me)
            raise
        except BaseException as error:
            for wanted in members:
                if wanted is not me and not wanted.answer.done():
                    wanted.answer.set_exception(error)
            self._ended(key, group)
            raise
        mine = None
        for number, wanted in enumerate(members, 1):
            if wanted is me:
                mine = by_number.get(number)
            elif not wanted.answer.done():
                wanted.answer.set_result(by_number.get(number))
        self._ended(key, group)
        return mine

    def _hand_on(self, key: tuple[str, tuple[Any, ...]], group: _Group, members: list[_Wanted], me: _Wanted) -> None:
        """The leader of `members` was cancelled: the next of them still waiting leads the rest (still running)."""
        rest = [wanted for wanted in members if wanted is not me and not wanted.answer.done()]
        if rest:
            rest[0].answer.set_result(_Batch(rest))
        else:
            self._ended(key, group)

    def _ended(self, key: tuple[str, tuple[Any, ...]], group: _Group) -> None:
        """A running read or batch ended: those waiting go as the next batch, led by the first still waiting."""
        group.running -= 1
        while group.waiting and group.running < self._in_flight:
            waiting, group.waiting = group.waiting[: self._most], group.waiting[self._most :]
            live = [wanted for wanted in waiting if not wanted.answer.done()]
            if live:
                group.running += 1
                live[0].answer.set_result(_Batch(live))
        if not group.running and not group.waiting and self._groups.get(key) is group:
            del self._groups[key]
