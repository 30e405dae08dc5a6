"""The edge in front of litestar: the fast path answers exactly like the slow one, compression is negotiated and
paid once per rendered version, CORS opens public reads to every origin and writes only to configured ones."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import brotli
import pytest
from litestar.testing import AsyncTestClient

from service.api.fast_path import EDGE_RENDERS, FAST
from service.api.metrics import SQL_STATEMENTS
from service.app import create_app
from service.config import Settings
from tests.support import TEST_SIGNING_KEY, Api, assert_problem, paragraph

CMS = "https://cms.example.org"


def fast_answers() -> float:
    return sum(sample.value for metric in FAST.collect() for sample in metric.samples if sample.name.endswith("_total"))


def comparable(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in {"x-request-id", "date"}}


async def seeded(api: Api, posts: int = 20) -> str:
    await api.open()
    for n in range(posts):
        await api.publish(body=paragraph(f"Post {n}: " + "the withdrawal from Kherson continues " * 3))
    return "/v1/coverages/kherson/timeline"


@pytest.mark.parametrize("encoding", [None, "gzip", "br"])
async def test_the_fast_path_sends_what_the_slow_path_sent(api: Api, encoding: str | None) -> None:
    url = await seeded(api)
    headers = {"Accept-Encoding": encoding or "identity"}
    slow = await api.client.get(url, headers=headers)
    before = fast_answers()
    fast = await api.client.get(url, headers=headers)
    assert fast_answers() == before + 1, "the second read was answered before routing"
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert comparable(dict(fast.headers)) == comparable(dict(slow.headers))
    not_modified = await api.client.get(url, headers={**headers, "If-None-Match": slow.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == slow.headers["etag"]


async def test_compressed_once_with_an_etag_per_coding(api: Api) -> None:
    url = await seeded(api)
    plain = await api.client.get(url, headers={"Accept-Encoding": "identity"})
    raw = {}
    for coding in ("gzip", "br"):
        answer = await api.client.get(url, headers={"Accept-Encoding": coding})
        assert answer.headers["content-encoding"] == coding
        assert "Accept-Encoding" in answer.headers["vary"]
        raw[coding] = answer
    assert len(raw["br"].headers["etag"]) > 2 and len({plain.headers["etag"], raw["gzip"].headers["etag"], raw["br"].headers["etag"]}) == 3
    assert plain.content == raw["gzip"].content == raw["br"].content, "httpx decodes: same JSON in every coding"
    wire = len(plain.content)
    assert wire > 4_000
    statements = SQL_STATEMENTS.value()
    for accept, held in (("gzip", "gzip"), ("br", "br"), ("gzip, br;q=0", "gzip"), ("br;q=0, gzip", "gzip")):
        again = await api.client.get(url, headers={"Accept-Encoding": accept, "If-None-Match": raw[held].headers["etag"]})
        assert again.status_code == 304, accept
    assert SQL_STATEMENTS.value() == statements, "no coding costs a database read"


async def test_compressed_bytes_decode_to_the_plain_answer(api: Api) -> None:
    url = await seeded(api)
    plain = (await api.client.get(url, headers={"Accept-Encoding": "identity"})).content
    async with api.client.stream("GET", url, headers={"Accept-Encoding": "br"}) as answer:
        wire = b"".join([chunk async for chunk in answer.aiter_raw()])
    assert brotli.decompress(wire) == plain and len(wire) < len(plain) / 3
    async with api.client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as answer:
        wire = b"".join([chunk async for chunk in answer.aiter_raw()])
    assert gzip.decompress(wire) == plain and len(wire) < len(plain) / 3


async def test_public_reads_answer_any_origin_and_reader_errors_are_cacheable(api: Api) -> None:
    url = await seeded(api, posts=1)
    answer = await api.client.get(url, headers={"Origin": "https://news.example.com"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "ETag" in answer.headers["access-control-expose-headers"]
    preflight = await api.client.options(
        "/v1/coverages/kherson/stream",
        headers={
            "Origin": "https://news.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "Last-Event-ID" in preflight.headers["access-control-allow-headers"]
    assert "Authorization" not in preflight.headers["access-control-allow-headers"]
    missing = await api.client.get("/v1/coverages/no-such-coverage/timeline", headers={"Origin": "https://x.example"})
    assert missing.status_code == 404 and missing.headers["cache-control"].startswith("public, max-age=")
    assert missing.headers["access-control-allow-origin"] == "*"


async def test_writes_answer_only_configured_origins(api: Api) -> None:
    await seeded(api, posts=0)
    preflight = await api.client.options(
        "/v1/coverages/kherson/posts",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    write = await api.publish(headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in write.headers


@pytest.fixture
async def cms_client(database_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    settings = Settings(signing_key=TEST_SIGNING_KEY, database_url=database_url, cors_origins=[CMS])
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def test_a_configured_origin_may_write(cms_client: AsyncTestClient, editor_token: str) -> None:  # type: ignore[type-arg]
    preflight = await cms_client.options(
        "/v1/coverages",
        headers={"Origin": CMS, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"},
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == CMS
    assert "Authorization" in preflight.headers["access-control-allow-headers"] and "Origin" in preflight.headers["vary"]
    opened = await cms_client.post(
        "/v1/coverages", json={"id": "cms", "title": "CMS"}, headers={"Origin": CMS, "Authorization": f"Bearer {editor_token}"}
    )
    assert opened.status_code == 201 and opened.headers["access-control-allow-origin"] == CMS
    assert "Origin" in opened.headers["vary"] and "Location" in opened.headers["access-control-expose-headers"]
    assert Settings.from_env({"LIVELINE_CORS_ORIGINS": f"{CMS}, https://desk.example.org"}).cors_origins == [
        CMS,
        "https://desk.example.org",
    ]


async def test_every_get_answers_head_with_the_same_headers_and_no_body(api: Api, auditor_token: str) -> None:
    opened = (await api.open()).json()
    post = (await api.publish()).json()
    urls = [
        "/v1/coverages", "/v1/coverages/kherson", "/v1/coverages/kherson/timeline",
        f"/v1/coverages/kherson/changes?since={opened['cursor']}", f"/v1/coverages/kherson/posts/{post['id']}",
        f"/v1/coverages/kherson/posts/{post['id']}/history", "/v1/coverages/nowhere/timeline", "/v1/log-key",
        "/v1/coverages/kherson/checkpoint", "/v1/coverages/kherson/proofs/consistency?old=1", "/health", "/ready",
        "/schema/openapi.json",
    ]  # fmt: skip
    for url in urls:
        for accept_encoding in ("identity", "br"):
            asked = {"Accept-Encoding": accept_encoding}
            got = await api.client.get(url, headers=asked)
            head = await api.client.head(url, headers=asked)
            assert head.status_code == got.status_code, url
            assert head.content == b"", url
            same = ("etag", "content-type", "content-encoding", "cache-control", "vary", "content-length")
            assert {h: head.headers.get(h) for h in same} == {h: got.headers.get(h) for h in same}, url
    audited = await api.client.head("/v1/events", headers={"Authorization": f"Bearer {auditor_token}"})
    assert audited.status_code == 200 and audited.content == b""
    timeline = await api.client.get("/v1/coverages/kherson/timeline")
    held = await api.client.head("/v1/coverages/kherson/timeline", headers={"If-None-Match": timeline.headers["etag"]})
    assert held.status_code == 304 and held.content == b""


async def test_options_and_405_name_every_method_of_the_path(api: Api) -> None:
    await api.open()
    expected = {
        "/v1/coverages": "GET, HEAD, POST, OPTIONS",
        "/v1/coverages/kherson": "GET, HEAD, PATCH, OPTIONS",  # two controllers share this path
        "/v1/coverages/kherson/pinned": "PUT, DELETE, OPTIONS",
        "/v1/coverages/kherson/posts/p1": "GET, HEAD, PATCH, OPTIONS",
    }
    for path, allow in expected.items():
        answer = await api.client.options(path)
        assert (answer.status_code, answer.headers["allow"]) == (204, allow), path
    refused = await api.client.delete("/v1/coverages/kherson")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, PATCH, OPTIONS"
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_the_document_closes_every_request_object_the_server_closes(api: Api) -> None:
    document = (await api.client.get("/schema/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for name in ("OpenCoverage", "UpdateCoverage", "PublishPost", "EditPost", "RetractPost", "RedactPost", "PinPost",
                 "Paragraph", "Image", "Contributor"):  # fmt: skip
        assert schemas[name]["additionalProperties"] is False, name
    refused = await api.client.post("/v1/coverages", json={"id": "x", "title": "X", "extra": 1}, headers=api.auth())
    assert_problem(refused, 400)


async def test_the_document_states_the_limits_of_list_items_the_server_enforces(api: Api) -> None:
    schemas = (await api.client.get("/schema/openapi.json")).json()["components"]["schemas"]
    editors = schemas["OpenCoverage"]["properties"]["editors"]["items"]
    assert (editors["minLength"], editors["maxLength"]) == (1, 200)
    assert schemas["UpdateCoverage"]["properties"]["editors"]["oneOf"][0]["items"] == editors
    assert schemas["ListBlock"]["properties"]["items"]["items"]["minLength"] == 1
    for name in ("", "x" * 201):  # what the document now refuses, the server refuses, and keeps nothing
        refused = await api.client.post(
            "/v1/coverages", json={"id": "limits", "title": "L", "editors": [name]}, headers=api.auth()
        )
        assert_problem(refused, 400)
    assert (await api.client.get("/v1/coverages/limits")).status_code == 404


async def test_a_query_that_is_not_one_value_per_named_parameter_is_a_400(api: Api, auditor_token: str) -> None:
    await api.open()
    for query in ("limit=5&limit=6", "=5", "limit=", "limit=5&&order=newest&limit=2"):
        problem = assert_problem(await api.client.get(f"/v1/coverages/kherson/timeline?{query}"), 400)
        assert problem["type"].endswith(":invalid-request"), query
    assert (await api.client.get("/v1/coverages/kherson/timeline?limit=5&order=newest")).status_code == 200
    unknown = await api.client.get("/v1/audit/verify", params={"coverage_id": "nowhere"},
                                   headers={"Authorization": f"Bearer {auditor_token}"})  # fmt: skip
    assert_problem(unknown, 404)


def edge_renders() -> float:
    return sum(s.value for metric in EDGE_RENDERS.collect() for s in metric.samples if s.name.endswith("_total"))


def forget_renders(api: Api) -> None:
    """This process forgets every rendered page and every post state it read: the next read renders anew."""
    state = api.client.app.state
    for held in (state.pages, state.reads, state.known_posts, state.encoded_posts):
        held.forget("kherson")


async def storied(api: Api) -> str:
    """A coverage with a pinned post, an edit, a key event and a retraction: every part of a page."""
    url = await seeded(api, posts=30)
    posts = (await api.client.get(url, params={"limit": 30})).json()["posts"]
    await api.edit(posts[3]["id"], title="Corrected", key_event=True)
    await api.client.put("/v1/coverages/kherson/pinned", json={"post_id": posts[25]["id"]}, headers=api.auth())
    await api.retract(posts[7]["id"])
    return url


@pytest.mark.parametrize("encoding", [None, "gzip", "br"])
async def test_a_page_rendered_at_the_edge_is_the_page_litestar_renders(api: Api, encoding: str | None) -> None:
    url = await storied(api)
    first = (await api.client.get(url, params={"limit": 5})).json()
    queries = ["", "?limit=5", "?limit=5&order=oldest", "?key_events=true", "?limit=3&ignored=1",
               f"?limit=5&before={first['next']}", "?limit=100&order=newest&key_events=false"]  # fmt: skip
    headers = {"Accept-Encoding": encoding or "identity"}
    for query in queries:
        forget_renders(api)
        before = edge_renders()
        edge = await api.client.get(url + query, headers=headers)
        assert edge_renders() == before + 1, f"{query}: rendered at the edge"
        forget_renders(api)
        slow = await api.client.get(url + query, headers={**headers, **api.auth()})  # a token: litestar renders it
        assert edge_renders() == before + 1, f"{query}: rendered by litestar"
        assert (edge.status_code, edge.content) == (slow.status_code, slow.content), query
        assert comparable(dict(edge.headers)) == comparable(dict(slow.headers)), query
        assert edge.status_code == 200 and edge.headers["content-type"] == "application/json"


async def test_the_edge_leaves_every_other_timeline_read_to_litestar(api: Api) -> None:
    url = await storied(api)
    post_id = (await api.client.get(url)).json()["posts"][2]["id"]
    expected = {
        "?as_of=3": 401, f"?around={post_id}": 200, "?limit=0": 400, "?limit=101": 400, "?limit=020": 400,
        "?order=sideways": 400, "?key_events=1": 200, "?before=%21%21": 400, "?before=cDE6bzo1": 422,
        "?%6Cimit=5": 200,
    }  # fmt: skip
    for query, status in expected.items():
        before = edge_renders()
        answer = await api.client.get(url + query)
        assert answer.status_code == status, (query, answer.text)
        assert edge_renders() == before, query
    assert len((await api.client.get(url + "?%6Cimit=5")).json()["posts"]) == 5, "litestar read the escaped name"
    before = edge_renders()
    jsonld = await api.client.get(url + "?limit=4", headers={"Accept": "application/ld+json"})
    missing = await api.client.get("/v1/coverages/nowhere/timeline")
    assert jsonld.status_code == 200 and jsonld.headers["content-type"].startswith("application/ld+json")
    assert_problem(missing, 404)
    assert edge_renders() == before


async def test_a_page_rereads_only_what_this_process_does_not_hold(api: Api) -> None:
    url = await storied(api)
    statements = SQL_STATEMENTS.value
    forget_renders(api)
    start = statements()
    await api.client.get(url, params={"limit": 10})
    assert statements() - start == 2, "the page's posts and versions, then their states"
    start = statements()
    await api.client.get(url, params={"limit": 10, "order": "newest"})  # another variant, the same posts
    assert statements() - start == 1, "every state was held at its version"
    newest = (await api.client.get(url, params={"limit": 10})).json()["posts"][0]
    assert (await api.edit(newest["id"], title="Edited just now")).status_code == 200
    shown = (await api.client.get(url, params={"limit": 10, "order": "newest"})).json()["posts"][0]
    assert (shown["title"], shown["revision"]) == ("Edited just now", newest["revision"] + 1), "never a stale state"


async def test_a_page_connection_killed_under_the_edge_is_replaced(api: Api, admin_dsn: str) -> None:
    from service.app import STATEMENTS_NAME
    from service.store.pool import connect

    url = await storied(api)
    assert (await api.client.get(url, params={"limit": 2})).status_code == 200
    conn = await connect(api.database_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", STATEMENTS_NAME
        )
    finally:
        await conn.close()
    assert killed >= 1
    answers = [await api.client.get(url, params={"limit": n}) for n in (3, 4, 5)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    before = edge_renders()
    assert (await api.client.get(url, params={"limit": 6})).status_code == 200
    assert edge_renders() == before + 1, "the edge renders again on a fresh connection"


async def test_a_cache_buster_is_answered_from_memory_with_the_same_etag(api: Api) -> None:
    """A parameter no read takes changes nothing in the answer: polls that add one every time (`_=<time>`) are
    answered from the page rendered once, while a parameter a read takes, even escaped, is its own page."""
    url = await seeded(api, posts=6)
    statements = SQL_STATEMENTS.value
    plain = await api.client.get(url)
    start, fast = statements(), fast_answers()
    busted = [await api.client.get(f"{url}?_={n}&utm_source=feed") for n in range(20)]
    assert statements() == start and fast_answers() == fast + 20, "answered from memory, before routing"
    assert {(b.content, b.headers["etag"]) for b in busted} == {(plain.content, plain.headers["etag"])}
    assert (await api.client.get(f"{url}?_=1", headers={"If-None-Match": plain.headers["etag"]})).status_code == 304
    limited = (await api.client.get(f"{url}?limit=2&_=3")).json()
    assert len(limited["posts"]) == 2
    escaped = await api.client.get(f"{url}?%6Cimit=3")  # litestar reads it as `limit`
    assert len(escaped.json()["posts"]) == 3 and escaped.headers["etag"] != plain.headers["etag"]
