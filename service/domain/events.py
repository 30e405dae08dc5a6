"""The events of a coverage: immutable facts, one tagged Struct per type (SPEC §2).

Payload rules (msgspec schema evolution): new fields get defaults, a field never changes type;
a breaking change gets a new `schema_version` and an upcaster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from service.domain.blocks import Block
from service.domain.upcasting import upcast


class Contributor(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Who made a post, in the page's words ("Steve Rosenberg", role "Russia editor")."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    role: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


Contributors = Annotated[list[Contributor], Meta(max_length=20)]


class EventData(Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    schema_version: ClassVar[int] = 1


class CoverageOpened(EventData, frozen=True, tag="coverage.opened"):
    title: str
    summary: str | None = None
    editors: list[str] = []
    timezone: str = "UTC"


class CoverageUpdated(EventData, frozen=True, tag="coverage.updated"):
    title: str | UnsetType = UNSET
    summary: str | UnsetType | None = UNSET
    editors: list[str] | UnsetType = UNSET
    timezone: str | UnsetType = UNSET


class CoverageEnded(EventData, frozen=True, tag="coverage.ended"):
    pass


class CoverageReopened(EventData, frozen=True, tag="coverage.reopened"):
    pass


class PostPublished(EventData, frozen=True, tag="post.published"):
    """v2: `contributors` replaced v1's free-text `byline` (see `domain.upcasting`)."""

    schema_version: ClassVar[int] = 2
    body: list[Block]
    title: str | None = None
    contributors: list[Contributor] = []
    key_event: bool = False


class PostEdited(EventData, frozen=True, tag="post.edited"):
    """v2: `contributors` replaced v1's free-text `byline` (see `domain.upcasting`)."""

    schema_version: ClassVar[int] = 2
    title: str | UnsetType | None = UNSET
    body: list[Block] | UnsetType = UNSET
    contributors: list[Contributor] | UnsetType = UNSET
    key_event: bool | UnsetType = UNSET
    note: str | None = None


class PostPinned(EventData, frozen=True, tag="post.pinned"):
    pass


class PostUnpinned(EventData, frozen=True, tag="post.unpinned"):
    pass


class PostRetracted(EventData, frozen=True, tag="post.retracted"):
    reason: str


class PostRedacted(EventData, frozen=True, tag="post.redacted"):
    """Lawful erasure: the post's content leaves every earlier event (they keep an `Erased` marker instead)."""

    reason: str
    """Shown to everyone with the tombstone."""
    legal_reference: str
    """The order or request the erasure answers to: for auditors only."""


ERASABLE = ("post.published", "post.edited", "post.retracted")
"""The events whose data a redaction erases: those that carry what a post said."""


class Erased(Struct, frozen=True, kw_only=True):
    """What stands in an erased event's data: which redaction erased it, and why."""

    by: int
    """The version of the `post.redacted` event."""
    reason: str
    at: datetime


AnyEvent = (
    CoverageOpened
    | CoverageUpdated
    | CoverageEnded
    | CoverageReopened
    | PostPublished
    | PostEdited
    | PostPinned
    | PostUnpinned
    | PostRetracted
    | PostRedacted
)

EVENT_TYPES: dict[str, type[EventData]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}


class Metadata(Struct, frozen=True, kw_only=True, omit_defaults=True):
    actor: str
    request_id: str | None = None
    idempotency_key: str | None = None


class RecordedEvent(Struct, frozen=True, kw_only=True):
    """An event as the log holds it: envelope, payload and its link in the coverage's hash chain."""

    position: int
    coverage_id: str
    version: int
    post_id: str | None
    type: str
    schema_version: int
    data: AnyEvent | Erased
    metadata: Metadata
    recorded_at: datetime
    prev_hash: str
    hash: str


def event_type(data: EventData) -> str:
    tag = data.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def payload(data: EventData) -> dict[str, object]:
    """The `data` column: the payload without its type tag (the type has a column of its own)."""
    raw = msgspec.to_builtins(data)
    assert isinstance(raw, dict)
    raw.pop("type", None)
    return raw


def erased_payload(redaction_version: int, reason: str, at: datetime) -> dict[str, Any]:
    """The data an erased event keeps."""
    marker = msgspec.to_builtins(Erased(by=redaction_version, reason=reason, at=at))
    return {"erased": marker}


def decode_payload(type_: str, schema_version: int, data: dict[str, Any]) -> AnyEvent | Erased:
    """The payload in today's shape, whatever version stored it (the stored bytes are never touched); the
    marker of erased content where a redaction erased it."""
    if "erased" in data:
        return msgspec.convert(data["erased"], Erased)
    event: AnyEvent = msgspec.convert({**upcast(type_, schema_version, data), "type": type_}, AnyEvent)
    return event
