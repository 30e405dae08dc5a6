"""How events fold into state: the one definition used by the live projection, history, as_of and rebuild."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Literal

from msgspec import UNSET, Struct, field
from msgspec.structs import replace

from service.domain.blocks import Block
from service.domain.events import (
    Contributor,
    CoverageEnded,
    CoverageOpened,
    CoverageReopened,
    CoverageUpdated,
    Erased,
    PostEdited,
    PostPinned,
    PostPublished,
    PostRedacted,
    PostRetracted,
    PostUnpinned,
    RecordedEvent,
)


class CoverageState(Struct, frozen=True, kw_only=True):
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
    pinned_post_id: str | None
    post_count: int


class PostState(Struct, frozen=True, kw_only=True):
    id: str
    coverage_id: str
    sequence: int
    """The coverage version that published the post: the timeline's order key."""
    title: str | None
    body: list[Block]
    contributors: list[Contributor]
    key_event: bool
    revision: int
    version: int
    """The coverage version of the last event that changed the post (publish, edit, retract)."""
    published_at: datetime
    updated_at: datetime
    retracted_at: datetime | None = None
    retraction_reason: str | None = None
    redacted_at: datetime | None = None
    redaction_reason: str | None = None
    legal_reference: str | None = None

    @property
    def retracted(self) -> bool:
        """Withdrawn from readers: retracted, or redacted (its content erased)."""
        return self.retracted_at is not None or self.redacted_at is not None

    @property
    def redacted(self) -> bool:
        return self.redacted_at is not None


class Timeline(Struct):
    """A whole coverage in memory: what a replay of its stream yields.

    Mutable on purpose: `fold` updates it in place so replaying a long stream stays linear.
    """

    coverage: CoverageState | None = None
    posts: dict[str, PostState] = field(default_factory=dict)


def evolve(
    coverage: CoverageState | None, post: PostState | None, event: RecordedEvent
) -> tuple[CoverageState, PostState | None]:
    """Apply one event to the coverage and to the post it concerns (if any)."""
    at = event.recorded_at
    data = event.data
    if isinstance(data, CoverageOpened):
        opened = CoverageState(
            id=event.coverage_id,
            title=data.title,
            summary=data.summary,
            editors=list(data.editors),
            timezone=data.timezone,
            status="live",
            started_at=at,
            ended_at=None,
            updated_at=at,
            version=event.version,
            pinned_post_id=None,
            post_count=0,
        )
        return opened, post
    if coverage is None:
        raise ValueError(f"event {event.type} at version {event.version} precedes coverage.opened")
    coverage = replace(coverage, version=event.version, updated_at=at)
    if isinstance(data, Erased):
        return _erased(coverage, post, event, data)
    match data:
        case CoverageUpdated():
            changes = {
                name: getattr(data, name)
                for name in ("title", "summary", "editors", "timezone")
                if getattr(data, name) is not UNSET
            }
            return replace(coverage, **changes), post
        case CoverageEnded():
            return replace(coverage, status="ended", ended_at=at), post
        case CoverageReopened():
            return replace(coverage, status="live", ended_at=None), post
        case PostPublished():
            assert event.post_id is not None
            published = PostState(
                id=event.post_id,
                coverage_id=event.coverage_id,
                sequence=event.version,
                title=data.title,
                body=list(data.body),
                contributors=list(data.contributors),
                key_event=data.key_event,
                revision=1,
                version=event.version,
                published_at=at,
                updated_at=at,
            )
            return replace(coverage, post_count=coverage.post_count + 1), published
    if post is None:
        raise ValueError(f"event {event.type} at version {event.version} concerns an unknown post")
    match data:
        case PostEdited():
            changes = {
                name: getattr(data, name)
                for name in ("title", "body", "contributors", "key_event")
                if getattr(data, name) is not UNSET
            }
            return coverage, replace(post, revision=post.revision + 1, version=event.version, updated_at=at, **changes)
        case PostPinned():
            return replace(coverage, pinned_post_id=post.id), post
        case PostUnpinned():
            return replace(coverage, pinned_post_id=None), post
        case PostRetracted():
            pinned = None if coverage.pinned_post_id == post.id else coverage.pinned_post_id
            retracted = replace(
                post, retracted_at=at, retraction_reason=data.reason, updated_at=at, version=event.version
            )
            return replace(coverage, pinned_post_id=pinned, post_count=coverage.post_count - 1), retracted
        case PostRedacted():
            pinned = None if coverage.pinned_post_id == post.id else coverage.pinned_post_id
            shown = 0 if post.retracted else 1
            redacted = replace(
                _without_content(post),
                redacted_at=at,
                redaction_reason=data.reason,
                legal_reference=data.legal_reference,
                updated_at=at,
                version=event.version,
            )
            return replace(coverage, pinned_post_id=pinned, post_count=coverage.post_count - shown), redacted
    raise ValueError(f"unknown event type {event.type}")


def _without_content(post: PostState) -> PostState:
    return replace(post, title=None, body=[], contributors=[], key_event=False, retraction_reason=None)


def _erased(
    coverage: CoverageState, post: PostState | None, event: RecordedEvent, erased: Erased
) -> tuple[CoverageState, PostState | None]:
    """An event whose content a redaction erased: it still publishes, revises or retracts the post, which is
    withdrawn from the start (its readers saw what is now gone). The redaction itself then lands on a post in
    the very state the live projection leaves: replay after erasure is exact."""
    assert event.post_id is not None
    at = event.recorded_at
    if event.type == "post.published":
        published = PostState(
            id=event.post_id,
            coverage_id=event.coverage_id,
            sequence=event.version,
            title=None,
            body=[],
            contributors=[],
            key_event=False,
            revision=1,
            version=event.version,
            published_at=at,
            updated_at=at,
            redacted_at=erased.at,
            redaction_reason=erased.reason,
        )
        return coverage, published
    if post is None:
        raise ValueError(f"event {event.type} at version {event.version} concerns an unknown post")
    if event.type == "post.edited":
        return coverage, replace(post, revision=post.revision + 1, version=event.version, updated_at=at)
    if event.type == "post.retracted":
        pinned = None if coverage.pinned_post_id == post.id else coverage.pinned_post_id
        return replace(coverage, pinned_post_id=pinned), replace(
            post, retracted_at=at, updated_at=at, version=event.version
        )
    raise ValueError(f"{event.type} at version {event.version} cannot be erased")


def fold(timeline: Timeline, event: RecordedEvent) -> Timeline:
    post = timeline.posts.get(event.post_id) if event.post_id else None
    timeline.coverage, post = evolve(timeline.coverage, post, event)
    if post is not None:
        timeline.posts[post.id] = post
    return timeline


def replay(events: Iterable[RecordedEvent]) -> Timeline:
    timeline = Timeline()
    for event in events:
        timeline = fold(timeline, event)
    return timeline


def post_history(
    base: CoverageState, stream: Iterable[tuple[RecordedEvent, int | None]]
) -> Iterator[tuple[RecordedEvent, PostState, bool]]:
    """A post's own events folded by `evolve`, each with the post after it and whether it was pinned then.

    Only one event outside the post's stream changes its standing: another post pinned in its place. Each
    `post.pinned` comes with the version of the coverage's next pin (None if none), so the history needs no
    other post's events. `base` stands in for the coverage, whose other fields no post event reads.
    """
    coverage = replace(base, pinned_post_id=None)
    post: PostState | None = None
    replaced_at: int | None = None
    for event, next_pin in stream:
        if replaced_at is not None and event.version > replaced_at:
            coverage, replaced_at = replace(coverage, pinned_post_id=None), None
        coverage, post = evolve(coverage, post, event)
        if isinstance(event.data, PostPinned):
            replaced_at = next_pin
        assert post is not None
        yield event, post, coverage.pinned_post_id == post.id
