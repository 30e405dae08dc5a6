"""Test helpers that drive Liveline through its public HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx

# The shared scenarios beside the checkout; a copy travels with the tests for checkouts without them.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
SCENARIOS = _SHARED if (_SHARED / "kherson.json").exists() else Path(__file__).resolve().parent / "scenarios"


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
