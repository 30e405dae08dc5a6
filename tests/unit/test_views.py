"""A timeline page built from posts encoded once (`EncodedPosts`) sends the bytes `TimelinePage` would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from service.api.cursors import encode_cursor, encode_page
from service.api.timeline import PageQuery, page_content
from service.api.views import EncodedPosts, TimelinePage, coverage_view, post_view
from service.config import Settings
from service.domain.blocks import Paragraph
from service.domain.events import Contributor
from service.domain.state import CoverageState, PostState
from service.projections.read_model import CoverageRow, PageRead

T0 = datetime(2022, 11, 11, 9, 0, tzinfo=UTC)


def post(n: int, **changes: object) -> PostState:
    state = PostState(
        id=f"01890a5d-ac96-774b-bcce-b302099a80{n:02d}",
        coverage_id="kherson",
        sequence=n + 1,
        title=f"Update {n}" if n % 2 else None,
        body=[Paragraph(text=f"Kherson <b>{n}</b> \u2018quoted\u2019 \u00e9")],
        contributors=[Contributor(name="Olga Kyrylenko")] if n % 3 == 0 else [],
        key_event=n % 4 == 0,
        revision=1,
        version=n + 1,
        published_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
    )
    return msgspec.structs.replace(state, **changes)


def coverage(pinned: str | None, version: int) -> CoverageState:
    return CoverageState(
        id="kherson",
        title="Russia withdraws from Kherson",
        summary=None,
        editors=["desk"],
        timezone="Europe/Kyiv",
        status="live",
        started_at=T0,
        ended_at=None,
        updated_at=T0,
        version=version,
        pinned_post_id=pinned,
        post_count=12,
    )


def both(read: PageRead, encoded: EncodedPosts, query: PageQuery) -> tuple[bytes, bytes]:
    """(a `TimelinePage` of the read, encoded whole: the reference; the page as sent, from `encoded`)."""
    settings = Settings()
    shown, more = read.posts[: query.limit], len(read.posts) > query.limit
    coverage, pinned_id = read.coverage.state, read.coverage.state.pinned_post_id
    plain = TimelinePage(
        coverage=coverage_view(coverage, read.coverage.latest_post_id, settings.poll_interval),
        pinned=post_view(read.pinned, pinned_id) if read.pinned else None,
        posts=[post_view(p, pinned_id) for p in shown],
        next=encode_page(query.order, shown[-1].sequence) if more and shown else None,
        cursor=encode_cursor(coverage.id, coverage.version),
    )
    latest = read.coverage.latest_post_id
    sent = page_content(coverage, latest, shown, more, read.pinned, query, settings, False, encoded)
    return msgspec.json.encode(plain), msgspec.json.encode(sent)


def test_encoded_posts_send_the_same_bytes_and_follow_every_change_of_a_post_and_of_the_pin() -> None:
    posts = [post(n) for n in range(12, 0, -1)]
    encoded = EncodedPosts()
    query = PageQuery(limit=10)
    read = PageRead(CoverageRow(coverage(posts[3].id, 13), posts[0].id), posts[:11], posts[3])
    expected, sent = both(read, encoded, query)
    assert sent == expected
    assert msgspec.json.decode(sent, type=TimelinePage).posts[3].pinned

    edited = [msgspec.structs.replace(posts[2], title="Edited", revision=2, version=14), *posts[3:]]
    read = PageRead(CoverageRow(coverage(posts[5].id, 15), None), [*posts[:2], *edited][:11], posts[5])
    expected, sent = both(read, encoded, query)
    assert sent == expected, "the edit and the pin's move are shown, not the JSON made before them"
    page = msgspec.json.decode(sent, type=TimelinePage)
    assert page.posts[2].title == "Edited" and not page.posts[3].pinned and page.posts[5].pinned

    expected, sent = both(PageRead(read.coverage, read.posts, None), encoded, PageQuery(limit=20))
    assert sent == expected and b'"next":null' in sent


def test_a_post_encoded_once_is_reused_while_its_state_is_the_same_object_and_the_oldest_leaves_first() -> None:
    encoded = EncodedPosts(capacity=2)
    first, second, third = post(1), post(2), post(3)
    made = encoded.of(first, None)
    assert encoded.of(first, None) is made
    assert encoded.of(msgspec.structs.replace(first), None) is not made, "an equal state read again is another"
    pinned = encoded.of(first, first.id)
    assert pinned != made and encoded.of(first, first.id) is pinned
    kept = encoded.of(second, None)
    encoded.of(third, None)
    assert encoded.of(second, None) is kept
    assert encoded.of(first, first.id) is not pinned, "the oldest made left when the third came"
