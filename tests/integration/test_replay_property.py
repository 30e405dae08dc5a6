"""Property: for any sequence of commands, the timeline `as_of` every step is exactly what was served at that
step, an online rebuild changes no answer, and every chain verifies."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from tests.support import TEST_SIGNING_KEY
from service import audit
from service.app import create_app
from service.config import Settings
from service.projections.rebuild import rebuild_online
from service.store import tokens
from service.store.pool import connect
from tests.conftest import fresh_database
from tests.integration.conftest import UNLIMITED

COVERAGES = ("alpha", "bravo")
VARIANTS = ({}, {"order": "oldest", "limit": 3}, {"key_events": "true", "limit": 2})
ACTIONS = ("publish", "publish", "publish", "edit", "pin", "unpin", "retract", "end", "reopen", "update")

steps = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.sampled_from(COVERAGES), st.integers(0, 50), st.booleans()),
    min_size=1,
    max_size=25,
)


async def play(database_url: str, script: list[tuple[str, str, int, bool]]) -> None:
    conn = await connect(database_url)
    try:
        editor = await tokens.create_token(conn, "cms", "editor")
        auditor = await tokens.create_token(conn, "audit", "auditor")
    finally:
        await conn.close()
    as_editor = {"Authorization": f"Bearer {editor}"}
    as_auditor = {"Authorization": f"Bearer {auditor}"}
    served: list[tuple[str, int, dict[str, Any], bytes]] = []
    posts: dict[str, list[str]] = {c: [] for c in COVERAGES}
    unlimited = Settings(signing_key=TEST_SIGNING_KEY, database_url=database_url, write_quota_per_minute=UNLIMITED, write_quota_burst=UNLIMITED)
    async with AsyncTestClient(app=create_app(unlimited)) as client:
        for coverage in COVERAGES:
            await client.post("/v1/coverages", json={"id": coverage, "title": coverage}, headers=as_editor)
        for action, coverage, pick, flag in script:
            base = f"/v1/coverages/{coverage}"
            target = posts[coverage][pick % len(posts[coverage])] if posts[coverage] else None
            if action == "publish":
                answer = await client.post(
                    f"{base}/posts", json={"body": [{"type": "paragraph", "text": f"p{pick}"}], "key_event": flag}, headers=as_editor
                )
                if answer.status_code == 201:
                    posts[coverage].append(answer.json()["id"])
            elif action == "edit" and target:
                answer = await client.patch(f"{base}/posts/{target}", json={"title": f"t{pick}", "key_event": flag}, headers=as_editor)
            elif action == "pin" and target:
                answer = await client.put(f"{base}/pinned", json={"post_id": target}, headers=as_editor)
            elif action == "unpin":
                answer = await client.delete(f"{base}/pinned", headers=as_editor)
            elif action == "retract" and target:
                answer = await client.post(f"{base}/posts/{target}/retract", json={"reason": "r"}, headers=as_editor)
            elif action in {"end", "reopen"}:
                answer = await client.post(f"{base}/{action}", headers=as_editor)
            elif action == "update":
                answer = await client.patch(base, json={"summary": f"s{pick}"}, headers=as_editor)
            else:
                continue
            assert answer.status_code in {200, 201, 409}, answer.text
            for variant in VARIANTS:
                page = await client.get(f"{base}/timeline", params=variant)
                served.append((coverage, page.json()["coverage"]["version"], variant, page.content))

        for coverage, version, variant, body in served:
            then = await client.get(f"/v1/coverages/{coverage}/timeline", params={**variant, "as_of": str(version)}, headers=as_auditor)
            assert then.content == body, (coverage, version, variant)

        urls = [f"/v1/coverages/{c}/timeline" for c in COVERAGES] + [f"/v1/coverages/{c}" for c in COVERAGES]
        urls += [f"/v1/coverages/{c}/posts/{p}" for c in COVERAGES for p in posts[c]]
        before = [(await client.get(url)).content for url in urls]
        reader, writer = await connect(database_url), await connect(database_url)
        try:
            await rebuild_online(reader, writer)
            assert (await audit.verify(writer)).ok
        finally:
            await reader.close()
            await writer.close()
        assert [(await client.get(url)).content for url in urls] == before


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=steps)
def test_as_of_rebuild_and_verify_agree_with_what_was_served(
    admin_dsn: str, template_database: str, script: list[tuple[str, str, int, bool]]
) -> None:
    asyncio.run(play(fresh_database(admin_dsn, template_database), script))
