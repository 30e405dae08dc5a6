"""Test helpers that drive Liveline through its public HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.domain.note import Signer

# The shared scenarios beside the checkout; a copy travels with the tests for checkouts without them.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
SCENARIOS = _SHARED if (_SHARED / "kherson.json").exists() else Path(__file__).resolve().parent / "scenarios"


TEST_SIGNING_KEY = Signer.generate("liveline.test").text()
"""The in-process apps' transparency-log key: tests never write a key into the working folder's data dir."""


def kherson() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCENARIOS / "kherson.json").read_text())
    return data


def paragraph(text: str) -> list[dict[str, str]]:
    return [{"type": "paragraph", "text": text}]


class Api:
    """A CMS talking to Liveline: every call returns the httpx response."""

    def __init__(self, client: Any, token: str, database_url: str) -> None:
        self.client = client
        self.token = token
        self.database_url = database_url

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    async def open(self, coverage_id: str = "kherson", **fields: Any) -> httpx.Response:
        body = {"id": coverage_id, "title": "Kherson live", **fields}
        return await self.client.post("/v1/coverages", json=body, headers=self.auth())  # type: ignore[no-any-return]

    async def publish(self, coverage_id: str = "kherson", headers: dict[str, str] | None = None, **post: Any) -> httpx.Response:
        post.setdefault("body", paragraph("Hello"))
        return await self.client.post(  # type: ignore[no-any-return]
            f"/v1/coverages/{coverage_id}/posts", json=post, headers=self.auth(**(headers or {}))
        )

    async def edit(self, post_id: str, coverage_id: str = "kherson", if_match: str | None = None, **changes: Any) -> httpx.Response:
        headers = self.auth(**({"If-Match": if_match} if if_match else {}))
        return await self.client.patch(  # type: ignore[no-any-return]
            f"/v1/coverages/{coverage_id}/posts/{post_id}", json=changes, headers=headers
        )

    async def retract(self, post_id: str, reason: str = "wrong", coverage_id: str = "kherson") -> httpx.Response:
        return await self.client.post(  # type: ignore[no-any-return]
            f"/v1/coverages/{coverage_id}/posts/{post_id}/retract", json={"reason": reason}, headers=self.auth()
        )

    async def pin(self, post_id: str, coverage_id: str = "kherson") -> httpx.Response:
        return await self.client.put(  # type: ignore[no-any-return]
            f"/v1/coverages/{coverage_id}/pinned", json={"post_id": post_id}, headers=self.auth()
        )

    async def unpin(self, coverage_id: str = "kherson") -> httpx.Response:
        return await self.client.delete(f"/v1/coverages/{coverage_id}/pinned", headers=self.auth())  # type: ignore[no-any-return]

    async def timeline(self, coverage_id: str = "kherson", **params: Any) -> httpx.Response:
        return await self.client.get(f"/v1/coverages/{coverage_id}/timeline", params=params)  # type: ignore[no-any-return]

    async def event_count(self) -> int:
        conn = await asyncpg.connect(self.database_url)
        try:
            total = await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()
        assert isinstance(total, int)
        return total


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body.get("title")
    assert body.get("type", "").startswith("urn:liveline:problem:"), body  # every problem has a documented type
    return body


async def sse_events(response: httpx.Response) -> Any:
    """Parse a text/event-stream response into dicts: {event, id, data} or {comment}."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = fields[name] + "\n" + value if name in fields else value


async def play_kherson(api: Api) -> None:
    """SPEC §9: play the Kherson page through the HTTP API and check both renderings, revisions and histories."""
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
