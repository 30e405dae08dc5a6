"""The auditor's tools over the log: verify every chain, export it as canonical NDJSON, import it elsewhere.

The API and the CLI call these; the chain rules themselves live in `domain.chain`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import msgspec
from msgspec import Struct

from service.domain.chain import ChainBreak, ChainChecker, ChainHead, LoggedEvent
from service.projections.rebuild import rebuild
from service.store import events
from service.store.pool import Connection

_canonical = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(LoggedEvent)


class VerifyReport(Struct, frozen=True, kw_only=True):
    ok: bool
    events: int
    coverages: list[ChainHead]
    failure: ChainBreak | None = None
    head: str | None = None
    """The head hash when one coverage was verified."""


async def verify(conn: Connection, coverage_id: str | None = None) -> VerifyReport:
    """Recompute every link of every coverage's chain (or one coverage's), stopping at the first break.

    A chain alone cannot show that its newest events were removed; the read model remembers each
    coverage's version, so a log that ends short of it is reported too.
    """
    checker = ChainChecker()
    count = 0
    failure: ChainBreak | None = None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for event in events.each_in_chain_order(conn, coverage_id):
            count += 1
            failure = checker.check(event)
            if failure is not None:
                break
        heads = checker.heads()
        if failure is None:
            failure = checker.finish()
        if failure is None:
            failure = await _short_logs(conn, heads, coverage_id)
    head = heads[0].head if coverage_id and heads else None
    return VerifyReport(ok=failure is None, events=count, coverages=heads, failure=failure, head=head)


async def _short_logs(conn: Connection, heads: list[ChainHead], coverage_id: str | None) -> ChainBreak | None:
    rows = await conn.fetch(
        "SELECT id, version FROM coverages WHERE $1::text IS NULL OR id = $1 ORDER BY id", coverage_id
    )
    logged = {head.coverage_id: head.version for head in heads}
    for row in rows:
        if logged.get(row["id"], 0) < row["version"]:
            return ChainBreak(
                coverage_id=row["id"],
                version=logged.get(row["id"], 0) + 1,
                position=0,
                reason=f"the log ends at version {logged.get(row['id'], 0)} but readers were shown version "
                f"{row['version']}: events were removed",
            )
    return None


def canonical_line(event: LoggedEvent) -> bytes:
    return _canonical.encode(event) + b"\n"


async def export_lines(conn: Connection, coverage_id: str | None = None) -> AsyncIterator[bytes]:
    async for event in events.each_in_position_order(conn, coverage_id):
        yield canonical_line(event)


class ImportRefused(Exception):
    pass


async def import_log(conn: Connection, lines: Iterable[bytes], batch: int = 1_000) -> int:
    """Load an exported log into an empty store, checking every link as it goes, then build the read model.

    All in one transaction: a broken link (or anything else wrong) leaves the store as empty as it was.
    """
    checker = ChainChecker()
    imported = 0
    async with conn.transaction():
        if await events.count(conn):
            raise ImportRefused("the store already holds events; import only into an empty store")
        pending: list[LoggedEvent] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = _decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ImportRefused(f"line {number}: not an exported event ({exc})") from exc
            broken = checker.check(event)
            if broken is not None:
                raise ImportRefused(
                    f"line {number}: {broken.coverage_id} version {broken.version}: {broken.reason}; nothing imported"
                )
            pending.append(event)
            if len(pending) >= batch:
                imported += await events.insert_logged(conn, pending)
                pending = []
        imported += await events.insert_logged(conn, pending)
        unredacted = checker.finish()
        if unredacted is not None:
            raise ImportRefused(
                f"{unredacted.coverage_id} version {unredacted.version}: {unredacted.reason}; nothing imported"
            )
        await events.advance_positions(conn)
        await rebuild(conn)
    return imported
