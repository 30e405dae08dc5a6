"""The classic pitfall, made deterministic: an event that takes a position and commits after a higher one.

A naive `position > N` reader skips it for good; the feed's xid8 horizon holds the later event back until
the earlier transaction ends, and then delivers both.
"""

from __future__ import annotations

import asyncpg

from service.domain.events import Metadata, PostPublished
from service.domain.blocks import Paragraph
from service.domain.ids import new_post_id
from service.projections import read_model
from service.store import events
from service.store.pool import connect
from tests.support import Api, paragraph


async def test_late_commit_is_skipped_by_a_naive_reader_and_delivered_by_the_feed(api: Api, auditor_token: str) -> None:
    await api.open("early")
    await api.open("late")
    headers = {"Authorization": f"Bearer {auditor_token}"}
    start = (await api.client.get("/v1/events", headers=headers)).json()
    assert len(start["events"]) == 2
    naive_cursor = max(e["event"]["position"] for e in start["events"])

    slow = await connect(api.database_url)
    transaction = slow.transaction()
    await transaction.start()
    await events.lock_stream(slow, "late")
    coverage = await read_model.load_coverage(slow, "late")
    post_id = new_post_id()
    held = await events.append(slow, "late", post_id, PostPublished(body=[Paragraph(text="held")]), Metadata(actor="cms"))
    await read_model.project(slow, coverage, None, held)

    quick = (await api.publish("early", body=paragraph("quick"))).json()
    plain = await asyncpg.connect(api.database_url)
    try:
        seen = await plain.fetch("SELECT position FROM events WHERE position > $1 ORDER BY position", naive_cursor)
        assert [r["position"] for r in seen] == [held.position + 1], "only the quick event is visible"
        naive_cursor = seen[-1]["position"]

        during = (await api.client.get("/v1/events", params={"after": start["next"]}, headers=headers)).json()
        assert during["events"] == [], "the feed waits for the open transaction rather than skip past it"

        await transaction.commit()
        later = await plain.fetch("SELECT position FROM events WHERE position > $1", naive_cursor)
        assert later == [], "the naive reader has skipped the late event for good"
    finally:
        await plain.close()
        await slow.close()

    after = (await api.client.get("/v1/events", params={"after": start["next"]}, headers=headers)).json()
    delivered = [(e["event"]["coverage_id"], e["event"]["post_id"]) for e in after["events"]]
    assert delivered == [("late", post_id), ("early", quick["id"])], "both, the late one first (it began first)"
