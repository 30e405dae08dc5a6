"""SPEC §9: the Kherson live page played through the HTTP API, checked against both renderings."""

from __future__ import annotations

from typing import Any

from tests.support import Api, kherson


async def test_kherson_page_renders_both_versions_with_revisions_and_history(api: Api) -> None:
    scenario = kherson()
    coverage = scenario["coverage"]
    opened = await api.open(
        coverage["id"], title=coverage["title"], editors=coverage["editors"], timezone=coverage["timezone"]
    )
    assert opened.status_code == 201, opened.text
    cid = coverage["id"]
    ids: dict[str, str] = {}
    sent: dict[str, dict[str, Any]] = {}
    renderings = 0
    for step in scenario["steps"]:
        if step["do"] == "publish":
            post = {k: v for k, v in step["post"].items() if v is not None}
            response = await api.publish(cid, **post)
            assert response.status_code == 201, response.text
            ids[step["ref"]] = response.json()["id"]
            sent[step["ref"]] = dict(step["post"])
        elif step["do"] == "edit":
            response = await api.edit(ids[step["ref"]], cid, **step["changes"])
            assert response.status_code == 200, response.text
            sent[step["ref"]].update(step["changes"])
        elif step["do"] == "expect_timeline":
            renderings += 1
            page = (await api.timeline(cid)).json()
            assert [p["id"] for p in page["posts"]] == [ids[ref] for ref in step["order"]]
            assert page["coverage"]["latest_post_id"] == ids[step["latest"]]
            assert page["coverage"]["title"] == coverage["title"]
            assert page["coverage"]["timezone"] == "Europe/London"
            for post in page["posts"]:
                ref = next(r for r, i in ids.items() if i == post["id"])
                assert post["title"] == sent[ref]["title"]
                assert post["body"] == sent[ref]["body"], "texts are verbatim after sanitising"
            for ref, revision in step.get("revisions", {}).items():
                assert next(p for p in page["posts"] if p["id"] == ids[ref])["revision"] == revision
    assert renderings == 2

    history = (await api.client.get(f"/v1/coverages/{cid}/posts/{ids['us-estimates']}/history")).json()
    assert [e["type"] for e in history["entries"]] == ["post.published", "post.edited"]
    first, second = (e["post"] for e in history["entries"])
    assert first["revision"] == 1 and second["revision"] == 2
    assert first["body"][-1]["type"] == "paragraph"
    assert second["body"][-1] == {
        "type": "link",
        "url": "https://www.example.org/news/casualty-figures",
        "text": "Read more on the casualty figures here.",
    }
    zelensky = (await api.client.get(f"/v1/coverages/{cid}/posts/{ids['zelensky']}/history")).json()
    assert [e["post"]["title"] for e in zelensky["entries"]] == [None, "'The enemy does not give us gifts' - Zelensky"]
    welcome = (await api.client.get(f"/v1/coverages/{cid}/posts/{ids['welcome']}/history")).json()
    assert [e["type"] for e in welcome["entries"]] == ["post.published"]
    assert "actor" not in welcome["entries"][0], "public history carries no metadata"
