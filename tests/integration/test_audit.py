"""Auditors: the global feed, verification against tampering, the timeline as it was, export and import."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from service import audit
from service.store.pool import connect
from service.api.cursors import encode_feed
from tests.conftest import fresh_database
from tests.integration.conftest import make_token
from service.domain.chain import commit
from tests.support import TEST_SIGNING_KEY, Api, assert_problem, paragraph


async def record(api: Api) -> list[str]:
    """A small but complete history over two coverages; returns the post ids of 'kherson'."""
    await api.open()
    ids = [(await api.publish(body=paragraph(f"p{i}"), key_event=i == 0)).json()["id"] for i in range(3)]
    await api.edit(ids[0], title="Titled", note="title added")
    await api.pin(ids[1])
    await api.open("second", title="Second")
    await api.retract(ids[2], reason="duplicate")
    await api.client.patch("/v1/coverages/kherson", json={"summary": "All day"}, headers=api.auth())
    return ids


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_feed_pages_through_every_event_and_filters(api: Api, auditor_token: str) -> None:
    await record(api)
    seen: list[dict] = []  # type: ignore[type-arg]
    after = None
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        page = (await api.client.get("/v1/events", params=params, headers=bearer(auditor_token))).json()
        seen += [entry["event"] for entry in page["events"]]
        after = page["next"]
        if not page["has_more"]:
            break
    assert len(seen) == await api.event_count() == 9
    assert len({e["position"] for e in seen}) == 9
    first = seen[0]
    assert set(first) == {
        "position", "coverage_id", "version", "post_id", "type", "schema_version", "data", "metadata",
        "recorded_at", "prev_hash", "hash", "salt", "commitment",
    }  # fmt: skip
    # The hash covers a salted commitment to the data (so content can be erased and the chain still verify).
    assert all(e["commitment"] == commit(e["salt"], e["data"]) for e in seen)
    assert len({e["salt"] for e in seen}) == 9
    assert first["metadata"]["actor"] == "cms"
    again = (await api.client.get("/v1/events", params={"after": after}, headers=bearer(auditor_token))).json()
    assert again["events"] == [] and again["next"] == after, "a caught-up reader keeps its place"
    only = (await api.client.get("/v1/events", params={"coverage_id": "second"}, headers=bearer(auditor_token))).json()
    assert [e["event"]["type"] for e in only["events"]] == ["coverage.opened"]
    edits = (await api.client.get("/v1/events", params={"type": "post.edited"}, headers=bearer(auditor_token))).json()
    assert [e["event"]["data"]["note"] for e in edits["events"]] == ["title added"]
    streamed = await api.client.get("/v1/events", headers={**bearer(auditor_token), "Accept": "application/x-ndjson"})
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert [line["event"] for line in lines] == seen


async def test_feed_and_verify_are_for_auditors(api: Api, auditor_token: str) -> None:
    for url in ("/v1/events", "/v1/audit/verify"):
        assert_problem(await api.client.get(url), 401)
        assert_problem(await api.client.get(url, headers=api.auth()), 403)
        assert (await api.client.get(url, headers=bearer(auditor_token))).status_code == 200
    admin = await make_token(api.database_url, "ops", "admin")
    assert (await api.client.get("/v1/events", headers=bearer(admin))).status_code == 200
    assert_problem(await api.client.get("/v1/events", params={"after": "nope"}, headers=bearer(auditor_token)), 422)


async def test_verify_reports_every_chain(api: Api, auditor_token: str) -> None:
    await record(api)
    report = (await api.client.get("/v1/audit/verify", headers=bearer(auditor_token))).json()
    assert report["ok"] is True and report["events"] == 9 and report["failure"] is None
    assert [(c["coverage_id"], c["events"]) for c in report["coverages"]] == [("kherson", 8), ("second", 1)]
    one = (await api.client.get("/v1/audit/verify", params={"coverage_id": "second"}, headers=bearer(auditor_token))).json()
    assert one["ok"] and one["events"] == 1 and one["head"] == one["coverages"][0]["head"]


TAMPERING = {
    "data": ("UPDATE events SET data = jsonb_set(data, '{reason}', '\"no reason\"') WHERE type = 'post.retracted'", "post.retracted"),
    "metadata": ("UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"someone else\"') WHERE type = 'post.edited'", "post.edited"),
    "time": ("UPDATE events SET recorded_at = recorded_at - interval '1 hour' WHERE type = 'post.pinned'", "post.pinned"),
    "type": ("UPDATE events SET type = 'post.unpinned' WHERE type = 'post.pinned'", "post.pinned"),
}


async def tamper(database_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def version_of_type(database_url: str, type_: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT version FROM events WHERE coverage_id = 'kherson' AND type = $1", type_))
    finally:
        await conn.close()


@pytest.mark.parametrize("field", sorted(TAMPERING))
async def test_changing_any_field_of_one_event_is_found_at_that_event(api: Api, field: str) -> None:
    await record(api)
    statement, type_ = TAMPERING[field]
    version = await version_of_type(api.database_url, type_)
    await tamper(api.database_url, statement)
    conn = await connect(api.database_url)
    try:
        report = await audit.verify(conn)
    finally:
        await conn.close()
    assert report.ok is False and report.failure is not None
    assert (report.failure.coverage_id, report.failure.version) == ("kherson", version)
    assert "altered" in report.failure.reason


REMOVALS = {
    "delete one": (["DELETE FROM events WHERE coverage_id = 'kherson' AND version = 3"], 4, "missing or moved"),
    "swap two": (
        [
            "UPDATE events SET version = version + 100 WHERE coverage_id = 'kherson' AND version IN (2, 3)",
            "UPDATE events SET version = 105 - version WHERE coverage_id = 'kherson' AND version IN (102, 103)",
        ],
        2,
        "prev_hash",
    ),
    "delete the newest": (["DELETE FROM events WHERE coverage_id = 'kherson' AND version = 8"], 8, "removed"),
}


@pytest.mark.parametrize("case", sorted(REMOVALS))
async def test_deleting_swapping_and_truncating_events_are_found(api: Api, case: str) -> None:
    await record(api)
    statements, version, reason = REMOVALS[case]
    await tamper(api.database_url, *statements)
    conn = await connect(api.database_url)
    try:
        report = await audit.verify(conn)
    finally:
        await conn.close()
    assert report.failure is not None
    assert report.failure.version == version and reason in report.failure.reason, report.failure


async def test_timeline_as_of_a_version_or_a_time_is_what_readers_saw(api: Api, auditor_token: str) -> None:
    await api.open()
    served: dict[int, bytes] = {}
    moments: dict[int, str] = {}
    for step in range(4):
        post = (await api.publish(body=paragraph(f"p{step}"))).json()
        if step == 2:
            await api.pin(post["id"])
        response = await api.timeline()
        version = response.json()["coverage"]["version"]
        served[version] = response.content
        moments[version] = datetime.now(UTC).isoformat()
    await api.retract(post["id"], reason="later")
    for version, body in served.items():
        by_version = await api.client.get(
            "/v1/coverages/kherson/timeline", params={"as_of": str(version)}, headers=bearer(auditor_token)
        )
        assert by_version.status_code == 200 and by_version.content == body
        assert by_version.headers["cache-control"] == "private, no-store"
    for version, moment in moments.items():
        by_time = await api.client.get(
            "/v1/coverages/kherson/timeline", params={"as_of": moment}, headers=bearer(auditor_token)
        )
        assert by_time.content == served[version]


async def test_as_of_is_for_auditors_and_checks_its_value(api: Api, auditor_token: str) -> None:
    await api.open()
    assert_problem(await api.client.get("/v1/coverages/kherson/timeline", params={"as_of": "1"}), 401)
    assert_problem(await api.client.get("/v1/coverages/kherson/timeline", params={"as_of": "1"}, headers=api.auth()), 403)
    # 400: outside the documented pattern; 422: inside it, but no version or time the coverage can answer for.
    bad_values = (
        ("²", 400), ("yesterday", 400), ("2022-11-10T10:00:00", 400), ("2022-11-10t10:00:00z", 400),
        ("99", 422), ("0", 422), ("0001-01-01T00:00:00+01:00", 422), ("2022-13-01T00:00:00Z", 422),
        ("2000-01-01T00:00:00Z", 404),
    )  # fmt: skip
    for bad, status in bad_values:
        response = await api.client.get("/v1/coverages/kherson/timeline", params={"as_of": bad}, headers=bearer(auditor_token))
        assert_problem(response, status)


async def test_export_import_round_trip_is_exact(api: Api, auditor_token: str, admin_dsn: str) -> None:
    ids = await record(api)
    conn = await connect(api.database_url)
    try:
        exported = [line async for line in audit.export_lines(conn)]
    finally:
        await conn.close()
    assert len(exported) == 9 and all(line.endswith(b"\n") for line in exported)

    target = await asyncio.to_thread(fresh_database, admin_dsn)
    conn = await connect(target)
    try:
        assert await audit.import_log(conn, exported) == 9
        again = [line async for line in audit.export_lines(conn)]
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()
    assert again == exported, "export -> import -> export is byte-identical"

    from litestar.testing import AsyncTestClient

    from service.app import create_app
    from service.config import Settings

    auditor_there = await make_token(target, "standards-desk", "auditor")
    urls = ["/v1/coverages", "/v1/coverages/kherson", "/v1/coverages/kherson/timeline", "/v1/coverages/second/timeline"]
    urls += [f"/v1/coverages/kherson/posts/{pid}" for pid in ids]
    urls += [f"/v1/coverages/kherson/posts/{pid}/history" for pid in ids]
    urls += ["/v1/coverages/kherson/timeline?as_of=4"]
    async with AsyncTestClient(app=create_app(Settings(signing_key=TEST_SIGNING_KEY, database_url=target))) as there:
        for url in urls:
            here_answer = await api.client.get(url, headers=bearer(auditor_token))
            there_answer = await there.get(url, headers=bearer(auditor_there))
            assert (there_answer.status_code, there_answer.content) == (here_answer.status_code, here_answer.content), url
        published = await there.post(
            "/v1/coverages/kherson/posts", json={"body": paragraph("after import")}, headers=bearer(
                await make_token(target, "cms", "editor")
            )
        )
        assert published.status_code == 201, "the restored store takes new events"


async def test_import_refuses_a_broken_file_and_leaves_the_store_empty(api: Api, admin_dsn: str) -> None:
    await record(api)
    conn = await connect(api.database_url)
    try:
        exported = [line async for line in audit.export_lines(conn)]
        with pytest.raises(audit.ImportRefused, match="empty store"):
            await audit.import_log(conn, exported)
    finally:
        await conn.close()
    altered = exported.copy()
    rewritten = json.loads(altered[4])
    rewritten["metadata"]["actor"] = "someone else"  # still a well-formed exported event: only the chain can tell
    altered[4] = json.dumps(rewritten, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    target = await asyncio.to_thread(fresh_database, admin_dsn)
    conn = await connect(target)
    try:
        with pytest.raises(audit.ImportRefused, match=r"line 5: kherson version \d+: .*altered"):
            await audit.import_log(conn, altered)
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM coverages") == 0
    finally:
        await conn.close()


async def test_feed_cursors_beyond_this_databases_log_are_refused(api: Api, auditor_token: str) -> None:
    await api.open()
    await api.publish()
    headers = bearer(auditor_token)
    first = (await api.client.get("/v1/events", params={"limit": 1}, headers=headers)).json()
    assert (await api.client.get("/v1/events", params={"after": first["next"]}, headers=headers)).status_code == 200
    for forged in (encode_feed(2**40, 1), encode_feed(1, 10**9)):
        for accept in ("application/json", "application/x-ndjson"):
            refused = await api.client.get("/v1/events", params={"after": forged}, headers={**headers, "Accept": accept})
            assert_problem(refused, 422)


async def test_the_http_verify_answer_names_the_break(api: Api, auditor_token: str) -> None:
    await record(api)
    statement, type_ = TAMPERING["data"]
    version = await version_of_type(api.database_url, type_)
    await tamper(api.database_url, statement)
    answer = await api.client.get("/v1/audit/verify", headers=bearer(auditor_token))
    assert answer.status_code == 200 and answer.headers["cache-control"] == "private, no-store"
    report = answer.json()
    assert report["ok"] is False
    assert (report["failure"]["coverage_id"], report["failure"]["version"]) == ("kherson", version)
    assert "altered" in report["failure"]["reason"]
    one = (await api.client.get("/v1/audit/verify", params={"coverage_id": "kherson"}, headers=bearer(auditor_token))).json()
    assert one["ok"] is False and one["failure"]["version"] == version
