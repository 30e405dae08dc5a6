"""Response bodies: what readers, editors and auditors see, built from folded state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

from service.api.cursors import encode_cursor
from service.domain.blocks import Block
from service.domain.events import Contributor, PostEdited, PostRedacted, PostRetracted, RecordedEvent
from service.domain.state import CoverageState, PostState

_encoder = msgspec.json.Encoder()


class CoverageView(Struct, frozen=True, kw_only=True):
    id: str
    title: str
    summary: str | None
    editors: list[str]
    timezone: str
    status: Literal["live", "ended"]
    started_at: datetime
    ended_at: datetime | None
    updated_at: datetime
    version: int
    post_count: int
    pinned_post_id: str | None
    latest_post_id: str | None
    cursor: str
    checkpoint: str
    """Where the signed checkpoint of the coverage's log at this version is: what a reader saw, provably."""
    poll_interval: int | None
    """Seconds to wait before polling again; null once the coverage has ended (stop polling)."""


class CoverageList(Struct, frozen=True, kw_only=True):
    coverages: list[CoverageView]
    next: str | None


class PostView(Struct, frozen=True, kw_only=True):
    id: str
    coverage_id: str
    title: str | None
    body: list[Block]
    byline: str | None
    """The contributors' names, joined: for clients that show a one-line byline."""
    contributors: list[Contributor]
    key_event: bool
    pinned: bool
    revision: int
    published_at: datetime
    updated_at: datetime


class TimelinePage(Struct, frozen=True, kw_only=True):
    coverage: CoverageView
    pinned: PostView | None
    posts: list[PostView]
    next: str | None
    cursor: str


class EncodedTimelinePage(Struct, frozen=True, kw_only=True):
    """A `TimelinePage` as sent, its posts already encoded (`EncodedPosts`): the same fields in the same order,
    so the same bytes (tests/unit/test_views.py holds them equal). `TimelinePage` is what the document shows."""

    coverage: CoverageView
    pinned: msgspec.Raw | None
    posts: list[msgspec.Raw]
    next: str | None
    cursor: str


class ChangesPage(Struct, frozen=True, kw_only=True):
    cursor: str
    has_more: bool
    posts: list[PostView]
    removed: list[Tombstone]
    pinned_post_id: str | None
    coverage: CoverageView
    poll_interval: int | None


class Tombstone(Struct, frozen=True, kw_only=True, omit_defaults=True):
    post_id: str
    coverage_id: str
    retracted_at: datetime
    """When the post left the timeline: its retraction, or its redaction."""
    reason: str
    redacted: bool = False
    """The post's content was erased (lawful erasure); `reason` is the redaction's."""
    legal_reference: str | None = None
    """For auditors and editors: what the erasure answers to."""


class HistoryEntry(Struct, frozen=True, kw_only=True, omit_defaults=True):
    version: int
    type: str
    recorded_at: datetime
    note: str | None = None
    reason: str | None = None
    post: PostView | None = None
    actor: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None


class PostHistory(Struct, frozen=True, kw_only=True):
    coverage_id: str
    post_id: str
    tombstone: Tombstone | None
    entries: list[HistoryEntry]


def coverage_view(coverage: CoverageState, latest_post_id: str | None, poll_interval: int) -> CoverageView:
    return CoverageView(
        id=coverage.id,
        title=coverage.title,
        summary=coverage.summary,
        editors=coverage.editors,
        timezone=coverage.timezone,
        status=coverage.status,
        started_at=coverage.started_at,
        ended_at=coverage.ended_at,
        updated_at=coverage.updated_at,
        version=coverage.version,
        post_count=coverage.post_count,
        pinned_post_id=coverage.pinned_post_id,
        latest_post_id=latest_post_id,
        cursor=encode_cursor(coverage.id, coverage.version),
        checkpoint=f"/v1/coverages/{coverage.id}/checkpoint?size={coverage.version}",
        poll_interval=poll_interval if coverage.status == "live" else None,
    )


def post_view(post: PostState, pinned_post_id: str | None) -> PostView:
    return PostView(
        id=post.id,
        coverage_id=post.coverage_id,
        title=post.title,
        body=post.body,
        byline=", ".join(c.name for c in post.contributors) or None,
        contributors=post.contributors,
        key_event=post.key_event,
        pinned=post.id == pinned_post_id,
        revision=post.revision,
        published_at=post.published_at,
        updated_at=post.updated_at,
    )


class EncodedPosts:
    """Each recent post's JSON as a timeline page shows it, encoded once: a page rendered after a change
    re-encodes only the posts that changed, not the twenty it shows.

    A post's JSON is kept with the state object it was made from and used only for that very object, which
    `KnownPosts` hands out until the post changes or is forgotten: a changed post is encoded afresh. Whatever
    `KnownPosts` forgets (a rebuild, an erasure) this forgets at the same moment, so erased content is not kept
    in memory either. The oldest made leaves first, as in `KnownPosts`.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._held: dict[str, tuple[PostState, bool, msgspec.Raw]] = {}

    def of(self, post: PostState, pinned_post_id: str | None) -> msgspec.Raw:
        pinned = post.id == pinned_post_id
        held = self._held.get(post.id)
        if held is not None and held[0] is post and held[1] == pinned:
            return held[2]
        encoded = msgspec.Raw(_encoder.encode(post_view(post, pinned_post_id)))
        self._held.pop(post.id, None)
        self._held[post.id] = (post, pinned, encoded)
        if len(self._held) > self._capacity:
            del self._held[next(iter(self._held))]
        return encoded

    def all_of(self, posts: list[PostState], pinned_post_id: str | None) -> list[msgspec.Raw]:
        """`of` each post, in one loop: a page re-rendered after a change finds nearly all of them held."""
        held, found = self._held, []
        for post in posts:
            kept = held.get(post.id)
            if kept is not None and kept[0] is post and kept[1] == (post.id == pinned_post_id):
                found.append(kept[2])
            else:
                found.append(self.of(post, pinned_post_id))
        return found

    def __iter__(self) -> Iterator[bytes]:
        """The JSON held, oldest first."""
        return iter([bytes(encoded) for _, _, encoded in self._held.values()])

    def forget(self, coverage_id: str | None = None) -> None:
        """Every post, or one coverage's."""
        held = self._held.items()
        for post_id in [i for i, (post, _, _) in held if coverage_id is None or post.coverage_id == coverage_id]:
            del self._held[post_id]


def tombstone(post: PostState, *, full: bool = False) -> Tombstone:
    if post.redacted_at is not None:
        return Tombstone(
            post_id=post.id,
            coverage_id=post.coverage_id,
            retracted_at=post.redacted_at,
            reason=post.redaction_reason or "",
            redacted=True,
            legal_reference=post.legal_reference if full else None,
        )
    assert post.retracted_at is not None and post.retraction_reason is not None
    return Tombstone(
        post_id=post.id,
        coverage_id=post.coverage_id,
        retracted_at=post.retracted_at,
        reason=post.retraction_reason,
    )


def history_entry(event: RecordedEvent, post: PostState, pinned_post_id: str | None, *, full: bool) -> HistoryEntry:
    """One step of a post's history; `full` (auditors, editors) adds who asked and shows retracted content."""
    data = event.data
    show_post = not post.redacted and (full or not post.retracted)
    entry = HistoryEntry(
        version=event.version,
        type=event.type,
        recorded_at=event.recorded_at,
        note=data.note if isinstance(data, PostEdited) else None,
        reason=data.reason if isinstance(data, PostRetracted | PostRedacted) else None,
        post=post_view(post, pinned_post_id) if show_post else None,
    )
    if not full:
        return entry
    metadata = event.metadata
    return msgspec.structs.replace(
        entry, actor=metadata.actor, request_id=metadata.request_id, idempotency_key=metadata.idempotency_key
    )
