"""`Together`: reads that queue go as one statement, each read gets the answer a statement of its own would give,
and no read is lost to another's cancellation or fault. Against the real PostgreSQL, with real concurrent readers;
the queue is made by holding a one-connection lender busy."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from service.projections import read_model
from service.store.pool import Statements
from service.store.together import Together
from tests.support import Api, paragraph

ONE = "SELECT $1::text AS who, 60 / $2::int AS share WHERE $2::int > 0"
MANY = """SELECT n, $1::text AS who, 60 / x AS share FROM unnest($2::int[]) WITH ORDINALITY AS q(x, n) WHERE x > 0"""
SLOW_MANY = MANY.replace("WHERE x > 0", "WHERE x > 0 AND (SELECT true FROM pg_sleep(0.3))")


class Counted:
    def __init__(self) -> None:
        self.statements = 0

    def __call__(self) -> None:
        self.statements += 1


@pytest.fixture
async def lender(database_url: str) -> AsyncIterator[tuple[Statements, Counted]]:
    counted = Counted()
    statements = Statements(database_url, 1, {"application_name": "liveline together test"}, counted)
    try:
        yield statements, counted
    finally:
        await statements.close()


async def busy(statements: Statements, seconds: float = 0.2) -> asyncio.Task[Any]:
    """The lender's one connection, held for `seconds`: reads queue behind it meanwhile."""
    holding = asyncio.create_task(statements.fetchrow("SELECT pg_sleep($1::float)", seconds))
    await asyncio.sleep(0.05)
    return holding


def answer(row: asyncpg.Record | BaseException | None) -> tuple[str, int] | None:
    assert not isinstance(row, BaseException), row
    return None if row is None else (row["who"], row["share"])


async def test_reads_that_queue_go_as_one_statement_each_with_its_own_answer(
    lender: tuple[Statements, Counted],
) -> None:
    statements, counted = lender
    together = Together(statements.fetchrow, statements.fetch, in_flight=1)
    holding = await busy(statements)
    shares = [3, 0, 5, 4, -1, 3, 12, 1]  # 0 and -1 have no row; 3 twice
    reads = [asyncio.create_task(together.fetchrow(ONE, MANY, ("desk",), (share,))) for share in shares]
    await holding
    answers = await asyncio.wait_for(asyncio.gather(*reads), 5)
    assert [answer(row) for row in answers] == [("desk", 60 // s) if s > 0 else None for s in shares]
    # The held connection's statement, the first read alone (it was running, waiting for the connection), then
    # the seven that queued behind it as one.
    assert counted.statements == 3
    assert together._groups == {}, "nothing is kept once the reads are answered"


async def test_a_batch_takes_at_most_its_limit_and_the_rest_go_next(lender: tuple[Statements, Counted]) -> None:
    statements, counted = lender
    together = Together(statements.fetchrow, statements.fetch, in_flight=1, most=3)
    holding = await busy(statements)
    reads = [asyncio.create_task(together.fetchrow(ONE, MANY, ("desk",), (share,))) for share in range(1, 9)]
    await holding
    answers = await asyncio.wait_for(asyncio.gather(*reads), 5)
    assert [answer(row) for row in answers] == [("desk", 60 // share) for share in range(1, 9)]
    assert counted.statements == 1 + 1 + 3, "held, the first alone, then seven in batches of three, three and one"


async def test_reads_with_other_shared_parameters_never_share_a_statement(lender: tuple[Statements, Counted]) -> None:
    statements, counted = lender
    together = Together(statements.fetchrow, statements.fetch, in_flight=1)
    holding = await busy(statements)
    desks = ["world", "europe", "world", "europe", "world"]
    reads = [asyncio.create_task(together.fetchrow(ONE, MANY, (d,), (i + 1,))) for i, d in enumerate(desks)]
    await holding
    answers = await asyncio.wait_for(asyncio.gather(*reads), 5)
    assert [answer(row) for row in answers] == [(d, 60 // (i + 1)) for i, d in enumerate(desks)]
    assert counted.statements == 5, "the held one, then each desk's first alone and the rest of each desk together"


async def test_a_reader_that_gives_up_while_waiting_leaves_the_batch_and_the_rest_are_answered(
    lender: tuple[Statements, Counted],
) -> None:
    statements, _ = lender
    together = Together(statements.fetchrow, statements.fetch, in_flight=1)
    holding = await busy(statements)
    reads = [asyncio.create_task(together.fetchrow(ONE, MANY, ("desk",), (share,))) for share in (1, 2, 3, 4)]
    await asyncio.sleep(0.05)
    reads[1].cancel()  # the batch's first, its leader-to-be
    await holding
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 5)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [answer(row) for row in (done[0], done[2], done[3])] == [("desk", 60), ("desk", 20), ("desk", 15)]
    assert together._groups == {}


async def test_a_leader_cancelled_while_its_batch_runs_hands_the_batch_on(lender: tuple[Statements, Counted]) -> None:
    statements, counted = lender
    batches = asyncio.Event()

    async def many(query: str, *args: Any) -> list[asyncpg.Record]:
        batches.set()
        return await statements.fetch(query, *args)

    together = Together(statements.fetchrow, many, in_flight=1)
    holding = await busy(statements)
    reads = [asyncio.create_task(together.fetchrow(ONE, SLOW_MANY, ("desk",), (share,))) for share in (1, 2, 3, 4)]
    await holding
    await asyncio.wait_for(batches.wait(), 5)
    await asyncio.sleep(0.05)  # the batch of the other three is under way (it sleeps 0.3 s in PostgreSQL)
    assert reads[0].done() and not reads[1].done()
    reads[1].cancel()
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 5)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [answer(row) for row in (done[0], done[2], done[3])] == [("desk", 60), ("desk", 20), ("desk", 15)]
    assert counted.statements == 4, "held, first, the cancelled batch, the same batch again without its leader"
    assert together._groups == {}


async def test_a_read_made_leader_in_the_moment_it_is_cancelled_hands_the_batch_on(
    lender: tuple[Statements, Counted],
) -> None:
    # The race: the running read ends and names a waiting read the batch's leader, and that read is cancelled
    # before it runs again. The cancellation is scheduled from inside the running read, just before it ends, so
    # it lands between the two (a public call cannot otherwise place both in one loop iteration).
    statements, _ = lender
    reads: list[asyncio.Task[asyncpg.Record | None]] = []

    async def one(query: str, *args: Any) -> asyncpg.Record | None:
        row = await statements.fetchrow(query, *args)
        if args[1] == 1:
            asyncio.get_running_loop().call_soon(reads[1].cancel)
        return row

    together = Together(one, statements.fetch, in_flight=1)
    holding = await busy(statements)
    reads += [asyncio.create_task(together.fetchrow(ONE, MANY, ("desk",), (share,))) for share in (1, 2, 3, 4)]
    await holding
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 5)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [answer(row) for row in (done[0], done[2], done[3])] == [("desk", 60), ("desk", 20), ("desk", 15)]
    assert together._groups == {}


async def test_a_fault_reaches_every_read_of_its_batch_and_the_next_reads_are_answered(
    lender: tuple[Statements, Counted],
) -> None:
    statements, _ = lender
    faulty = MANY.replace(" WHERE x > 0", "")  # a zero in the batch divides by zero
    together = Together(statements.fetchrow, statements.fetch, in_flight=1)
    holding = await busy(statements)
    reads = [asyncio.create_task(together.fetchrow(ONE, faulty, ("desk",), (share,))) for share in (1, 2, 0, 4)]
    await holding
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 5)
    assert answer(done[0]) == ("desk", 60), "the first went alone"
    assert all(isinstance(error, asyncpg.DivisionByZeroError) for error in done[1:])
    again = await asyncio.wait_for(together.fetchrow(ONE, faulty, ("desk",), (6,)), 5)
    assert answer(again) == ("desk", 10)
    assert together._groups == {}


async def test_timeline_pages_read_together_are_the_pages_read_one_by_one(
    api: Api, lender: tuple[Statements, Counted]
) -> None:
    """Every shape of page (both orders, key events or all, first or deep, longer than the coverage), with a
    retraction and a pin, read concurrently behind a busy connection so that they go in batches, against each read
    alone; and a coverage that does not exist, alone and in a batch."""
    statements, counted = lender
    await api.open()
    ids = [(await api.publish(body=paragraph(f"post {i}"), key_event=i % 3 == 0)).json()["id"] for i in range(12)]
    assert (await api.retract(ids[4])).status_code == 200
    assert (await api.pin(ids[7])).status_code == 200
    shapes = [
        ("kherson", order, past, key_events, limit)
        for order, key_events in itertools.product(("newest", "oldest"), (False, True))
        for past in (None, 3, 6, 9, 20)
        for limit in (1, 3, 30)
    ] + [("nowhere", "newest", None, False, 3)] * 4
    known = read_model.KnownPosts()  # every post's state held after the reads alone: each page is one statement

    async def page(shape: tuple[str, Any, int | None, bool, int]) -> read_model.PageRead | None:
        coverage_id, order, past, key_events_only, limit = shape
        return await read_model.timeline_page(
            statements, coverage_id, limit=limit, order=order, past=past, key_events_only=key_events_only, known=known
        )

    alone = [await page(shape) for shape in shapes]
    assert all(read is not None for read in alone[:-4]) and alone[-4:] == [None] * 4
    first = alone[0]
    assert first is not None and [post.id for post in first.posts] == [ids[11]]
    assert first.pinned is not None and first.pinned.id == ids[7]
    holding = await busy(statements)
    before = counted.statements
    read_together = await asyncio.wait_for(asyncio.gather(*(page(shape) for shape in shapes)), 10)
    await holding
    assert read_together == alone
    # Five groups (four shapes of statement in one coverage, and the missing coverage), each: two alone (they were
    # running, waiting for the connection), then the rest as one.
    assert counted.statements - before == 5 * 3


async def test_a_batch_answered_without_its_numbers_fails_its_readers_rather_than_stranding_them(
    lender: tuple[Statements, Counted],
) -> None:
    statements, _ = lender
    unnumbered = "SELECT $1::text AS who, x AS share FROM unnest($2::int[]) AS q(x)"
    together = Together(statements.fetchrow, statements.fetch, in_flight=1)
    holding = await busy(statements)
    reads = [asyncio.create_task(together.fetchrow(ONE, unnumbered, ("desk",), (share,))) for share in (1, 2, 3)]
    await holding
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 5)
    assert answer(done[0]) == ("desk", 60)
    assert all(isinstance(error, KeyError) for error in done[1:]), done
    assert together._groups == {}
