"""Bad input never corrupts: hostile, malformed and oversized requests get a 4xx problem and change nothing."""

from __future__ import annotations

import pytest

from tests.support import Api, assert_problem

POSTS = "/v1/coverages/kherson/posts"

HOSTILE_POSTS = {
    "script tag": {"body": [{"type": "paragraph", "text": "hi <script>alert(1)</script>"}]},
    "event handler": {"body": [{"type": "paragraph", "text": '<a href="https://x.org" onclick="steal()">x</a>'}]},
    "img onerror": {"body": [{"type": "paragraph", "text": '<img src=x onerror="alert(1)">'}]},
    "javascript link in text": {"body": [{"type": "paragraph", "text": '<a href="javascript:alert(1)">x</a>'}]},
    "javascript image url": {"body": [{"type": "image", "url": "javascript:alert(1)", "alt": "x"}]},
    "data url embed": {"body": [{"type": "embed", "provider": "other", "url": "data:text/html,<script>"}]},
    "script in title": {"title": "<script>x</script>", "body": [{"type": "paragraph", "text": "x"}]},
    "iframe in quote": {"body": [{"type": "quote", "text": "<iframe src='https://evil.example'></iframe>"}]},
    "unknown block type": {"body": [{"type": "video", "url": "https://x.org"}]},
    "unknown field": {"body": [{"type": "paragraph", "text": "x"}], "sticky": True},
    "unknown block field": {"body": [{"type": "paragraph", "text": "x", "style": "red"}]},
    "empty body": {"body": []},
    "too many blocks": {"body": [{"type": "paragraph", "text": "x"}] * 201},
    "title too long": {"title": "t" * 301, "body": [{"type": "paragraph", "text": "x"}]},
    "wrong types": {"body": "not a list"},
    "bad embed provider": {"body": [{"type": "embed", "provider": "myspace", "url": "https://x.org"}]},
    "malformed declaration": {"body": [{"type": "paragraph", "text": "<![foo[ x"}]},
    "nul in url": {"body": [{"type": "link", "url": "https://a\u0000b.org", "text": "x"}]},
    "newline after url": {"body": [{"type": "image", "url": "https://a.org/x.jpg\n", "alt": "x"}]},
    "empty once sanitised": {"title": "<p></p>", "body": [{"type": "paragraph", "text": "x"}]},
    "markup-only paragraph": {"body": [{"type": "paragraph", "text": "<span></span>"}]},
}

RAW_BODIES = {
    "invalid json": b'{"body": [',
    "invalid utf-8": b'{"body": [{"type": "paragraph", "text": "\xff\xfe"}]}',
    "lone surrogate": b'{"body": [{"type": "paragraph", "text": "\\ud800"}]}',
    "not an object": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_POSTS))
async def test_hostile_post_is_refused_and_changes_nothing(api: Api, name: str) -> None:
    await api.open()
    count = await api.event_count()
    response = await api.client.post(POSTS, json=HOSTILE_POSTS[name], headers=api.auth())
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert await api.event_count() == count


@pytest.mark.parametrize("name", sorted(RAW_BODIES))
async def test_malformed_body_is_a_400_problem(api: Api, name: str) -> None:
    await api.open()
    count = await api.event_count()
    headers = api.auth(**{"Content-Type": "application/json"})
    response = await api.client.post(POSTS, content=RAW_BODIES[name], headers=headers)
    assert_problem(response, 400)
    assert await api.event_count() == count


async def test_one_megabyte_body_is_413(api: Api) -> None:
    await api.open()
    count = await api.event_count()
    huge = b'{"body": [{"type": "paragraph", "text": "' + b"a" * (1024 * 1024) + b'"}]}'
    response = await api.client.post(POSTS, content=huge, headers=api.auth(**{"Content-Type": "application/json"}))
    assert_problem(response, 413)
    assert await api.event_count() == count


async def test_harmless_markup_is_sanitised_to_the_allowlist(api: Api) -> None:
    await api.open()
    text = '<span class="x">Kherson</span> <strong>now</strong> <a href="https://bbc.co.uk" target="_blank">more</a>'
    post = (await api.client.post(POSTS, json={"body": [{"type": "paragraph", "text": text}]}, headers=api.auth()))
    assert post.status_code == 201
    stored = post.json()["body"][0]["text"]
    assert stored == 'Kherson <strong>now</strong> <a href="https://bbc.co.uk" rel="noopener noreferrer">more</a>'


async def test_nul_characters_never_reach_the_database(api: Api) -> None:
    await api.open()
    response = await api.client.post(
        POSTS, json={"body": [{"type": "paragraph", "text": "a\u0000b"}], "byline": "x\u0000"}, headers=api.auth()
    )
    assert response.status_code == 201
    assert response.json()["body"][0]["text"] == "ab"
    assert_problem(await api.client.get("/v1/coverages/kh%00erson"), 404)
    assert_problem(await api.client.get("/v1/coverages/kherson/posts/a%00b"), 404)


async def test_hostile_ids_and_page_tokens_are_4xx(api: Api) -> None:
    import base64

    def token(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    assert_problem(await api.open("kherson\n"), 422)
    await api.open()
    count = await api.event_count()
    assert_problem(await api.timeline(before=token("p1:n:9999999999")), 422)
    assert_problem(await api.client.get("/v1/coverages", params={"before": token("l1:0001-01-01T00:00:00+01:00/x")}), 422)
    assert_problem(await api.client.get("/v1/coverages", params={"before": token("l1:2026-01-01T00:00:00/x")}), 422)
    assert await api.event_count() == count


NESTED = 50_000
HOSTILE_SHAPES = {
    "50,000 nested arrays": b'{"body": ' + b"[" * NESTED + b"]" * NESTED + b"}",
    "40,000 nested objects": b'{"body": ' + b'{"a":' * 40_000 + b"1" + b"}" * 40_000 + b"}",
    "nested arrays in a string's place": b'{"title": ' + b"[" * NESTED + b"]" * NESTED + b', "body": []}',
    "nested arrays at the top": b"[" * NESTED + b"]" * NESTED,
    "20,000 keys": b"{" + b",".join(b'"k%d": 1' % n for n in range(20_000)) + b"}",
    "300 KB of nesting, over the size limit": b"[" * 150_000 + b"]" * 150_000,
    "a 200 KB string": b'{"title": "' + b"x" * 200_000 + b'", "body": [{"type": "paragraph", "text": "x"}]}',
}
WRITE_ROUTES = [
    ("POST", "/v1/coverages"),
    ("PATCH", "/v1/coverages/kherson"),
    ("POST", "/v1/coverages/kherson/end"),
    ("POST", "/v1/coverages/kherson/reopen"),
    ("POST", "/v1/coverages/kherson/posts"),
    ("PATCH", "/v1/coverages/kherson/posts/{post}"),
    ("POST", "/v1/coverages/kherson/posts/{post}/retract"),
    ("PUT", "/v1/coverages/kherson/pinned"),
]


@pytest.mark.parametrize("shape", HOSTILE_SHAPES)
async def test_hostile_json_shapes_are_4xx_on_every_write_route(api: Api, shape: str) -> None:
    await api.open()
    post = (await api.publish()).json()["id"]
    count = await api.event_count()
    for method, route in WRITE_ROUTES:
        response = await api.client.request(
            method,
            route.format(post=post),
            content=HOSTILE_SHAPES[shape],
            headers=api.auth(**{"Content-Type": "application/json"}),
        )
        body = assert_problem(response, response.status_code)
        assert 400 <= response.status_code < 500, (method, route, response.status_code, body)
    assert await api.event_count() == count


async def test_a_json_body_is_held_to_its_documented_types(api: Api) -> None:
    """litestar converts a body in lax mode; the document says a boolean, so `1`, `"true"` and `0` are refused."""
    await api.open()
    post = (await api.publish()).json()
    count = await api.event_count()
    for value in (1, "true", 0):
        refused = assert_problem(await api.publish(key_event=value), 400)
        assert refused["errors"][0]["key"] == "key_event", refused
        assert_problem(await api.edit(post["id"], title="x", key_event=value), 400)
    assert_problem(await api.client.put("/v1/coverages/kherson/pinned", json={"post_id": 7}, headers=api.auth()), 400)
    assert await api.event_count() == count
    assert (await api.publish(key_event=True)).status_code == 201, "the documented type is still taken"


async def test_a_url_with_control_characters_is_outside_the_document_and_refused(api: Api) -> None:
    await api.open()
    count = await api.event_count()
    for url in ("https://example.com/\x01", "https://example.com/a\n", "https://example.com/\x7f"):
        block = {"type": "image", "url": url, "alt": "a"}
        refused = assert_problem(await api.publish(body=[block]), 400)
        assert refused["type"] in ("urn:liveline:problem:malformed-url", "urn:liveline:problem:invalid-request"), refused
    assert await api.event_count() == count
    assert (await api.publish(body=[{"type": "image", "url": "https://example.com/a", "alt": "a"}])).status_code == 201
