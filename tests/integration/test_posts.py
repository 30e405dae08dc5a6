"""Publishing, editing, pinning, retracting, reading: every endpoint of a post and its error paths."""

from __future__ import annotations

import asyncio

from tests.support import Api, assert_problem, paragraph


async def test_publish_returns_location_etag_and_the_post(api: Api) -> None:
    await api.open()
    response = await api.publish(title="First", body=paragraph("Hello"), byline="Jo Reporter", key_event=True)
    assert response.status_code == 201
    post = response.json()
    assert response.headers["location"] == f"/v1/coverages/kherson/posts/{post['id']}"
    assert response.headers["etag"] == '"1"'
    assert post["revision"] == 1 and post["key_event"] is True and post["pinned"] is False
    fetched = await api.client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == post


async def test_edit_bumps_revision_keeps_order_and_honours_if_match(api: Api) -> None:
    await api.open()
    first = (await api.publish(body=paragraph("one"))).json()
    second = (await api.publish(body=paragraph("two"))).json()
    edited = await api.edit(first["id"], if_match='"1"', title="Now titled", note="added a title")
    assert edited.status_code == 200 and edited.json()["revision"] == 2
    assert edited.headers["etag"] == '"2"'
    stale = await api.edit(first["id"], if_match='"1"', title="Again")
    assert assert_problem(stale, 412)["revision"] == 2
    page = (await api.timeline()).json()
    assert [p["id"] for p in page["posts"]] == [second["id"], first["id"]]
    assert page["posts"][1]["title"] == "Now titled"


async def test_edit_refuses_empty_change_bad_if_match_and_unknown_post(api: Api) -> None:
    await api.open()
    post = (await api.publish()).json()
    assert_problem(await api.edit(post["id"], note="only a note"), 422)
    assert_problem(await api.edit(post["id"], if_match="yesterday", title="x"), 400)
    url = f"/v1/coverages/kherson/posts/{post['id']}"
    no_tags = await api.client.patch(url, json={"title": "x"}, headers=api.auth(**{"If-Match": ""}))
    assert assert_problem(no_tags, 412)["revision"] == 1, "an empty If-Match lists no entity tag, so none matches"
    assert (await api.client.get(url)).json()["revision"] == 1
    assert_problem(await api.edit("01890a5d-ac96-774b-bcce-b302099a8057", title="x"), 404)
    assert_problem(await api.edit("not-a-uuid", title="x"), 404)


async def test_two_concurrent_edits_with_the_same_if_match_one_wins(api: Api) -> None:
    await api.open()
    post = (await api.publish()).json()
    results = await asyncio.gather(
        api.edit(post["id"], if_match='"1"', title="Desk A"), api.edit(post["id"], if_match='"1"', title="Desk B")
    )
    assert sorted(r.status_code for r in results) == [200, 412]
    assert (await api.client.get(f"/v1/coverages/kherson/posts/{post['id']}")).json()["revision"] == 2


async def test_pin_replaces_previous_pin_and_unpin_clears_it(api: Api) -> None:
    await api.open()
    a = (await api.publish(body=paragraph("a"))).json()
    b = (await api.publish(body=paragraph("b"))).json()
    assert (await api.pin(a["id"])).json()["pinned_post_id"] == a["id"]
    assert (await api.pin(b["id"])).json()["pinned_post_id"] == b["id"]
    page = (await api.timeline()).json()
    assert page["pinned"]["id"] == b["id"] and page["pinned"]["pinned"] is True
    assert [p["pinned"] for p in page["posts"]] == [True, False], "the pinned post stays at its own place"
    events_before = await api.event_count()
    assert (await api.pin(b["id"])).status_code == 200
    assert await api.event_count() == events_before, "pinning the pinned post appends nothing"
    assert (await api.unpin()).json()["pinned_post_id"] is None
    assert (await api.timeline()).json()["pinned"] is None
    events_before = await api.event_count()
    unknown = assert_problem(await api.pin("01890a5d-ac96-774b-bcce-b302099a8057"), 422)
    assert unknown["type"] == "urn:liveline:problem:no-such-post", "the pin is there; the body names no post"
    assert await api.event_count() == events_before
    assert_problem(await api.pin("nonsense"), 400)


async def test_retract_removes_post_and_pin_and_leaves_a_tombstone(api: Api) -> None:
    await api.open()
    post = (await api.publish(body=paragraph("wrong figure"))).json()
    await api.pin(post["id"])
    retracted = await api.retract(post["id"], reason="Figure could not be verified")
    assert retracted.status_code == 200
    assert retracted.json()["reason"] == "Figure could not be verified"
    page = (await api.timeline()).json()
    assert page["posts"] == [] and page["pinned"] is None
    assert page["coverage"]["post_count"] == 0 and page["coverage"]["latest_post_id"] is None
    gone = assert_problem(await api.client.get(f"/v1/coverages/kherson/posts/{post['id']}"), 410)
    assert gone["tombstone"]["reason"] == "Figure could not be verified"
    assert_problem(await api.edit(post["id"], title="x"), 409)
    assert_problem(await api.pin(post["id"]), 409)
    assert_problem(await api.retract(post["id"]), 409)


async def test_history_is_public_without_metadata_and_full_for_auditors(api: Api, auditor_token: str) -> None:
    await api.open()
    post = (await api.publish(body=paragraph("v1"), headers={"X-Request-ID": "req-123"})).json()
    await api.edit(post["id"], body=paragraph("v2"), note="corrected")
    await api.retract(post["id"], reason="legal")
    url = f"/v1/coverages/kherson/posts/{post['id']}/history"
    public = await api.client.get(url)
    assert public.headers["cache-control"].startswith("public")
    body = public.json()
    assert body["tombstone"]["reason"] == "legal"
    assert [e["type"] for e in body["entries"]] == ["post.retracted"]
    assert "post" not in body["entries"][0] and "actor" not in body["entries"][0]
    audited = await api.client.get(url, headers={"Authorization": f"Bearer {auditor_token}"})
    assert audited.headers["cache-control"] == "private, no-store"
    entries = audited.json()["entries"]
    assert [e["type"] for e in entries] == ["post.published", "post.edited", "post.retracted"]
    assert [e["post"]["body"][0]["text"] for e in entries] == ["v1", "v2", "v2"]
    assert entries[0]["actor"] == "cms" and entries[0]["request_id"] == "req-123"
    assert entries[1]["note"] == "corrected"
    assert_problem(await api.client.get(url, headers={"Authorization": "Bearer ll_forged"}), 401)


async def test_timeline_pages_orders_and_filters_key_events(api: Api) -> None:
    await api.open()
    ids = []
    for i in range(5):
        ids.append((await api.publish(body=paragraph(f"post {i}"), key_event=i % 2 == 0)).json()["id"])
    first = (await api.timeline(limit=2)).json()
    assert [p["id"] for p in first["posts"]] == [ids[4], ids[3]]
    second = (await api.timeline(limit=2, before=first["next"])).json()
    third = (await api.timeline(limit=2, before=second["next"])).json()
    assert [p["id"] for p in second["posts"] + third["posts"]] == [ids[2], ids[1], ids[0]]
    assert third["next"] is None
    oldest = (await api.timeline(order="oldest", limit=3)).json()
    assert [p["id"] for p in oldest["posts"]] == ids[:3]
    rest = (await api.timeline(order="oldest", limit=3, before=oldest["next"])).json()
    assert [p["id"] for p in rest["posts"]] == ids[3:]
    keys = (await api.timeline(key_events="true")).json()
    assert [p["id"] for p in keys["posts"]] == [ids[4], ids[2], ids[0]]
    assert_problem(await api.timeline(before="garbage"), 422)  # the documented alphabet, not a token of ours
    assert_problem(await api.timeline(before="garbage!"), 400)  # outside the documented alphabet
    assert_problem(await api.timeline(order="oldest", before=first["next"]), 422)
    assert_problem(await api.timeline(limit=0), 400)
    assert_problem(await api.timeline(order="sideways"), 400)


async def test_public_reads_send_strong_etags_and_answer_304(api: Api) -> None:
    await api.open()
    post = (await api.publish()).json()
    for url in (
        "/v1/coverages",
        "/v1/coverages/kherson",
        "/v1/coverages/kherson/timeline",
        f"/v1/coverages/kherson/posts/{post['id']}",
        f"/v1/coverages/kherson/posts/{post['id']}/history",
    ):
        first = await api.client.get(url)
        etag = first.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert first.headers["cache-control"] == "public, max-age=5, stale-while-revalidate=30"
        again = await api.client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        weakened = await api.client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
        assert weakened.status_code == 304, "a proxy may weaken the tag; it still matches"
    old = (await api.client.get("/v1/coverages/kherson/timeline")).headers["etag"]
    await api.publish()
    changed = await api.client.get("/v1/coverages/kherson/timeline", headers={"If-None-Match": old})
    assert changed.status_code == 200 and changed.headers["etag"] != old


async def test_reads_of_unknown_things_are_404_problems(api: Api) -> None:
    await api.open()
    assert_problem(await api.client.get("/v1/coverages/nope"), 404)
    assert_problem(await api.client.get("/v1/coverages/NOT%20A%20SLUG"), 404)
    assert_problem(await api.client.get("/v1/coverages/nope/timeline"), 404)
    assert_problem(await api.client.get("/v1/coverages/kherson/posts/01890a5d-ac96-774b-bcce-b302099a8057"), 404)
    assert_problem(await api.client.get("/v1/coverages/kherson/posts/x/history"), 404)
    assert_problem(await api.publish("nope"), 404)
