"""Coverages: open, read, list, update, end and reopen, and the refusals that go with them."""

from __future__ import annotations

from tests.support import Api, assert_problem


async def test_open_read_and_update_a_coverage(api: Api) -> None:
    opened = await api.open(editors=["Jeremy Gahagan"], timezone="Europe/London", summary="Live updates")
    assert opened.status_code == 201
    assert opened.headers["location"] == "/v1/coverages/kherson"
    body = opened.json()
    assert body["status"] == "live" and body["version"] == 1 and body["post_count"] == 0
    updated = await api.client.patch(
        "/v1/coverages/kherson", json={"title": "Kherson: day two", "summary": None}, headers=api.auth()
    )
    assert updated.status_code == 200
    assert updated.json()["title"] == "Kherson: day two" and updated.json()["summary"] is None
    assert updated.json()["editors"] == ["Jeremy Gahagan"]
    assert (await api.client.get("/v1/coverages/kherson")).json() == updated.json()


async def test_opening_an_existing_id_is_a_conflict(api: Api) -> None:
    await api.open()
    assert_problem(await api.open(), 409)


async def test_bad_coverage_fields_are_refused(api: Api) -> None:
    assert_problem(await api.open("Bad Slug"), 400)
    assert assert_problem(await api.open(timezone="Mars/Olympus"), 400)["type"] == "urn:liveline:problem:unknown-time-zone"
    assert_problem(await api.open(title="x" * 301), 400)
    assert_problem(await api.open(colour="red"), 400)
    assert_problem(await api.open(summary=""), 400)  # the document says at least one character
    for empty in ("<span></span>", "<b> </b>", "<br>"):  # allowed by the document, empty once markup is removed
        assert_problem(await api.open(summary=empty), 422)
    await api.open()
    assert_problem(await api.client.patch("/v1/coverages/kherson", json={}, headers=api.auth()), 422)
    assert await api.event_count() == 1


async def test_ended_coverage_refuses_writes_until_reopened(api: Api) -> None:
    await api.open()
    post = (await api.publish()).json()
    ended = await api.client.post("/v1/coverages/kherson/end", headers=api.auth())
    assert ended.status_code == 200 and ended.json()["status"] == "ended" and ended.json()["ended_at"]
    assert_problem(await api.publish(), 409)
    assert_problem(await api.edit(post["id"], title="x"), 409)
    assert_problem(await api.pin(post["id"]), 409)
    assert_problem(await api.retract(post["id"]), 409)
    assert_problem(await api.client.patch("/v1/coverages/kherson", json={"title": "t"}, headers=api.auth()), 409)
    assert_problem(await api.client.post("/v1/coverages/kherson/end", headers=api.auth()), 409)
    reopened = await api.client.post("/v1/coverages/kherson/reopen", headers=api.auth())
    assert reopened.status_code == 200 and reopened.json()["status"] == "live" and reopened.json()["ended_at"] is None
    assert_problem(await api.client.post("/v1/coverages/kherson/reopen", headers=api.auth()), 409)
    assert (await api.publish()).status_code == 201


async def test_list_is_newest_first_and_paginates(api: Api) -> None:
    for name in ("alpha", "bravo", "charlie"):
        await api.open(name)
    first = (await api.client.get("/v1/coverages", params={"limit": 2})).json()
    assert [c["id"] for c in first["coverages"]] == ["charlie", "bravo"]
    second = (await api.client.get("/v1/coverages", params={"limit": 2, "before": first["next"]})).json()
    assert [c["id"] for c in second["coverages"]] == ["alpha"] and second["next"] is None
    assert_problem(await api.client.get("/v1/coverages", params={"before": "zzz"}), 422)
    assert_problem(await api.client.get("/v1/coverages", params={"before": "z z"}), 400)


async def test_writes_to_unknown_coverages_are_404(api: Api) -> None:
    for path in ("/v1/coverages/ghost/end", "/v1/coverages/ghost/reopen"):
        assert_problem(await api.client.post(path, headers=api.auth()), 404)
    assert_problem(await api.client.patch("/v1/coverages/ghost", json={"title": "x"}, headers=api.auth()), 404)
    assert_problem(await api.unpin("ghost"), 404)
    assert await api.event_count() == 0
