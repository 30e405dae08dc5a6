"""Every route that changes the record refuses a missing or bad token (401) and the wrong role (403).

The routes are discovered from the app itself, so a new write route cannot slip through untested.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from litestar.testing import AsyncTestClient

from service.store import tokens
from service.store.pool import connect
from tests.integration.conftest import make_token
from tests.support import Api, assert_problem

SAMPLE = {"coverage_id": "kherson", "post_id": "01890a5d-ac96-774b-bcce-b302099a8057"}


def write_routes(client: AsyncTestClient) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    routes = []
    for route in client.app.routes:
        for method in getattr(route, "methods", ()):
            if method in {"POST", "PUT", "PATCH", "DELETE"}:
                path = re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLE[m[1]], route.path)
                routes.append((method, path))
    return sorted(set(routes))


async def test_every_write_route_requires_an_editor_token(api: Api, auditor_token: str) -> None:
    await api.open()
    count = await api.event_count()
    routes = write_routes(api.client)
    assert len(routes) >= 9, routes
    revoked = await make_token(api.database_url, "old-cms", "editor")
    from service.store import tokens
    from service.store.pool import connect

    conn = await connect(api.database_url)
    await tokens.revoke_token(conn, "old-cms")
    await conn.close()
    for method, path in routes:
        cases = {
            "missing": ({}, 401),
            "not bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
            "unknown": ({"Authorization": "Bearer ll_not-a-real-token"}, 401),
            "revoked": ({"Authorization": f"Bearer {revoked}"}, 401),
            "wrong role": ({"Authorization": f"Bearer {auditor_token}"}, 403),
        }
        for name, (headers, status) in cases.items():
            response = await api.client.request(method, path, json={}, headers=headers)
            problem = assert_problem(response, status)
            assert problem, f"{method} {path} with {name} token"
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert await api.event_count() == count


async def test_admin_may_do_what_editors_do(api: Api) -> None:
    admin = await make_token(api.database_url, "ops", "admin")
    response = await api.client.post(
        "/v1/coverages", json={"id": "by-admin", "title": "T"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.status_code == 201


async def test_every_guarded_read_route_requires_an_auditor_token(api: Api, auditor_token: str) -> None:
    guarded = sorted(
        route.path
        for route in api.client.app.routes
        for handler in getattr(route, "route_handlers", ())
        if "GET" in handler.http_methods and handler.opt.get("roles")
    )
    assert guarded == ["/v1/audit/verify", "/v1/events"], guarded
    for path in guarded:
        assert_problem(await api.client.get(path), 401)
        assert_problem(await api.client.get(path, headers={"Authorization": "Bearer ll_nope"}), 401)
        assert_problem(await api.client.get(path, headers=api.auth()), 403)
        assert (await api.client.get(path, headers={"Authorization": f"Bearer {auditor_token}"})).status_code == 200


async def test_tokens_expire_and_note_their_last_use(api: Api) -> None:
    conn = await connect(api.database_url)
    try:
        brief = await tokens.create_token(conn, "stringer", "editor", datetime.now(UTC) + timedelta(seconds=1))
        assert [t.last_used_at for t in await tokens.list_tokens(conn) if t.name == "stringer"] == [None]
        headers = {"Authorization": f"Bearer {brief}"}
        opened = await api.client.post("/v1/coverages", json={"id": "brief", "title": "B"}, headers=headers)
        assert opened.status_code == 201
        used = [t.last_used_at for t in await tokens.list_tokens(conn) if t.name == "stringer"]
        assert used[0] is not None
        await asyncio.sleep(1.2)
        late = await api.client.post("/v1/coverages", json={"id": "late", "title": "L"}, headers=headers)
        assert_problem(late, 401)
    finally:
        await conn.close()
