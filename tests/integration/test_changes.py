"""Changes by cursor, long poll, reading options: what a front-end needs to keep a timeline current."""

from __future__ import annotations

import base64

from tests.support import Api, assert_problem, paragraph


async def changes(api: Api, cursor: str, **params: object) -> dict:  # type: ignore[type-arg]
    response = await api.client.get("/v1/coverages/kherson/changes", params={"since": cursor, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_every_kind_of_change_arrives_after_a_cursor(api: Api) -> None:
    await api.open()
    old = (await api.publish(body=paragraph("old"))).json()
    doomed = (await api.publish(body=paragraph("doomed"))).json()
    page = (await api.timeline()).json()
    assert page["coverage"]["poll_interval"] == 5
    cursor = page["cursor"]
    assert (await changes(api, cursor))["posts"] == []

    fresh = (await api.publish(body=paragraph("fresh"))).json()
    await api.edit(old["id"], title="An old post, edited")
    await api.retract(doomed["id"], reason="wrong")
    await api.pin(fresh["id"])
    await api.client.patch("/v1/coverages/kherson", json={"title": "Renamed"}, headers=api.auth())

    got = await changes(api, cursor)
    assert [p["id"] for p in got["posts"]] == [fresh["id"], old["id"]], "in the order they last changed"
    assert got["posts"][1]["title"] == "An old post, edited" and got["posts"][1]["revision"] == 2
    assert [r["post_id"] for r in got["removed"]] == [doomed["id"]] and got["removed"][0]["reason"] == "wrong"
    assert got["pinned_post_id"] == fresh["id"]
    assert got["coverage"]["title"] == "Renamed"
    assert got["has_more"] is False and got["poll_interval"] == 5
    assert (await changes(api, got["cursor"]))["posts"] == []
    await api.unpin()
    assert (await changes(api, got["cursor"]))["pinned_post_id"] is None


async def test_limit_cuts_the_answer_and_has_more_continues_it(api: Api) -> None:
    await api.open()
    cursor = (await api.timeline()).json()["cursor"]
    ids = [(await api.publish(body=paragraph(f"p{i}"))).json()["id"] for i in range(5)]
    seen: list[str] = []
    rounds = 0
    while True:
        got = await changes(api, cursor, limit=2)
        seen += [p["id"] for p in got["posts"]]
        cursor = got["cursor"]
        rounds += 1
        if not got["has_more"]:
            break
        assert got["poll_interval"] == 0, "ask again at once"
    assert seen == ids and rounds == 3


async def test_a_cursor_outside_the_document_is_400_and_one_not_ours_is_422(api: Api) -> None:
    """400 only for what the document excludes (the alphabet, empty, missing, wait > 30); a cursor in the documented
    alphabet that this API did not hand out for this coverage at this version or before is a 422."""
    await api.open()
    await api.open("other")
    other_cursor = (await api.timeline("other")).json()["cursor"]
    ahead = base64.urlsafe_b64encode(b"c1:kherson:99").decode().rstrip("=")
    for cursor in ("garbage", other_cursor, ahead):
        refused = assert_problem(await api.client.get("/v1/coverages/kherson/changes", params={"since": cursor}), 422)
        assert refused["type"] == "urn:liveline:problem:invalid-cursor"
    for cursor in ("", "not/base64url", "=="):
        refused = assert_problem(await api.client.get("/v1/coverages/kherson/changes", params={"since": cursor}), 400)
        assert refused["type"] == "urn:liveline:problem:invalid-request"
    assert_problem(await api.client.get("/v1/coverages/kherson/changes"), 400)
    assert_problem(await api.client.get("/v1/coverages/kherson/changes", params={"since": "x", "wait": 31}), 400)


async def test_ended_coverage_advises_clients_to_stop_polling(api: Api) -> None:
    await api.open()
    await api.client.post("/v1/coverages/kherson/end", headers=api.auth())
    page = (await api.timeline()).json()
    assert page["coverage"]["poll_interval"] is None
    assert (await changes(api, page["cursor"]))["poll_interval"] is None


async def test_around_centres_a_page_on_a_post_and_stays_put_as_posts_arrive(api: Api) -> None:
    await api.open()
    ids = [(await api.publish(body=paragraph(f"p{i}"))).json()["id"] for i in range(9)]
    page = (await api.timeline(around=ids[4], limit=5)).json()
    assert [p["id"] for p in page["posts"]] == [ids[6], ids[5], ids[4], ids[3], ids[2]]
    await api.publish(body=paragraph("newer"))
    again = (await api.timeline(around=ids[4], limit=5)).json()
    assert [p["id"] for p in again["posts"]] == [p["id"] for p in page["posts"]]
    older = (await api.timeline(before=again["next"], limit=5)).json()
    assert [p["id"] for p in older["posts"]] == [ids[1], ids[0]]
    oldest_first = (await api.timeline(around=ids[4], limit=3, order="oldest")).json()
    assert [p["id"] for p in oldest_first["posts"]] == [ids[3], ids[4], ids[5]]
    assert_problem(await api.timeline(around="01890a5d-ac96-774b-bcce-b302099a8057"), 404)


async def test_timeline_as_json_ld_live_blog_posting(api: Api) -> None:
    await api.open(summary="Live updates from <b>Kherson</b>")
    post = (await api.publish(title="Welcome back", body=paragraph("AT&amp;T <em>said</em>"))).json()
    response = await api.client.get("/v1/coverages/kherson/timeline", headers={"Accept": "application/ld+json"})
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    assert document["@type"] == "LiveBlogPosting" and document["coverageStartTime"]
    assert "coverageEndTime" not in document
    assert document["description"] == "Live updates from Kherson"
    update = document["liveBlogUpdate"][0]
    assert update["@type"] == "BlogPosting" and update["headline"] == "Welcome back"
    assert update["articleBody"] == "AT&T said" and update["datePublished"] == post["published_at"]
    plain = await api.client.get("/v1/coverages/kherson/timeline")
    assert plain.headers["etag"] != response.headers["etag"], "each representation has its own validator"
    await api.client.post("/v1/coverages/kherson/end", headers=api.auth())
    ended = (await api.client.get("/v1/coverages/kherson/timeline", headers={"Accept": "application/ld+json"})).json()
    assert ended["coverageEndTime"]


async def test_json_ld_urls_come_from_settings_not_from_host(api: Api) -> None:
    await api.open()
    await api.publish(title="Welcome back")
    ld = {"Accept": "application/ld+json"}
    poisoned = await api.client.get("/v1/coverages/kherson/timeline", headers={**ld, "Host": "evil.example"})
    assert "evil.example" not in poisoned.text and poisoned.json()["url"].startswith("http://127.0.0.1:8000/")
    honest = await api.client.get("/v1/coverages/kherson/timeline", headers=ld)
    assert honest.content == poisoned.content and honest.headers["etag"] == poisoned.headers["etag"]


async def test_stream_of_an_ended_coverage_tells_event_source_to_stop(api: Api) -> None:
    await api.open()
    await api.client.post("/v1/coverages/kherson/end", headers=api.auth())
    response = await api.client.get("/v1/coverages/kherson/stream")
    assert response.status_code == 204, "204 stops EventSource from reconnecting"
