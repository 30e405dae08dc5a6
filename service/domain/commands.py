"""What editors ask for, and the checks each request must pass against current state.

Each `decide_*` function is pure: given state and a request it returns the events to append
(possibly none) or raises a DomainError.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, TypeVar, cast

from msgspec import UNSET, Meta, Struct, UnsetType

from service.domain.blocks import Body, clean_body
from service.domain.errors import (
    BylineAndContributors,
    CoverageAlreadyEnded,
    CoverageAlreadyExists,
    CoverageNotFound,
    CoverageStillLive,
    InvalidField,
    NoSuchPostToPin,
    NothingToChange,
    PostAlreadyRedacted,
    PostAlreadyRetracted,
    PostNotFound,
    RevisionMismatch,
    UnknownTimeZone,
)
from service.domain.events import (
    Contributor,
    Contributors,
    CoverageEnded,
    CoverageOpened,
    CoverageReopened,
    CoverageUpdated,
    EventData,
    PostEdited,
    PostPinned,
    PostPublished,
    PostRedacted,
    PostRetracted,
    PostUnpinned,
)
from service.domain.ids import COVERAGE_ID, POST_ID, is_coverage_id
from service.domain.markup import clean_text
from service.domain.state import CoverageState, PostState

CoverageId = Annotated[str, Meta(pattern=COVERAGE_ID.pattern, description="slug")]
Title = Annotated[str, Meta(min_length=1, max_length=300)]
Summary = Annotated[str, Meta(min_length=1, max_length=2_000)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Editors = Annotated[list[Name], Meta(max_length=50)]
TimezoneName = Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/London")]
Note = Annotated[str, Meta(min_length=1, max_length=1_000)]
Reason = Annotated[str, Meta(min_length=1, max_length=1_000)]


class _Request(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class OpenCoverage(_Request, frozen=True):
    id: CoverageId
    title: Title
    summary: Summary | None = None
    editors: Editors = []
    timezone: TimezoneName = "UTC"


class UpdateCoverage(_Request, frozen=True):
    title: Title | UnsetType = UNSET
    summary: Summary | UnsetType | None = UNSET
    editors: Editors | UnsetType = UNSET
    timezone: TimezoneName | UnsetType = UNSET


class PublishPost(_Request, frozen=True):
    body: Body
    title: Title | None = None
    contributors: Contributors | UnsetType = UNSET
    byline: Name | UnsetType | None = UNSET
    """Shorthand for one contributor; give `byline` or `contributors`, not both."""
    key_event: bool = False


class EditPost(_Request, frozen=True):
    title: Title | UnsetType | None = UNSET
    body: Body | UnsetType = UNSET
    contributors: Contributors | UnsetType = UNSET
    byline: Name | UnsetType | None = UNSET
    """Shorthand for one contributor (null: none); give `byline` or `contributors`, not both."""
    key_event: bool | UnsetType = UNSET
    note: Note | None = None


class RetractPost(_Request, frozen=True):
    reason: Reason


class RedactPost(_Request, frozen=True):
    reason: Annotated[Reason, Meta(description="shown to everyone with the tombstone")]
    legal_reference: Annotated[
        str, Meta(min_length=1, max_length=500, description="the order or request erased for: auditors only")
    ]


class PinPost(_Request, frozen=True):
    post_id: Annotated[str, Meta(pattern=POST_ID.pattern, description="id of a post of this coverage")]


@cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names a coverage may take: those of the `tzdata` package, pinned in pyproject.toml, so
    that the names accepted (and listed in the OpenAPI document) are the same on every machine, whatever its own
    zoneinfo holds. zoneinfo reads the package when the system lacks a zone."""
    return frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="ascii").split())


def _check_timezone(name: str | UnsetType) -> None:
    if isinstance(name, str) and name not in time_zones():
        raise UnknownTimeZone(f"timezone {name!r} is not an IANA time zone name", field="timezone")


_Optional = TypeVar("_Optional", bound=str | UnsetType | None)
"""A field that may be absent, null or text: its type passes through sanitising unchanged."""


def _clean_optional(text: _Optional, field: str) -> _Optional:
    return cast("_Optional", clean_text(text, field)) if isinstance(text, str) else text


def _contributors(
    contributors: list[Contributor] | UnsetType, byline: str | UnsetType | None
) -> list[Contributor] | None:
    """Sanitised contributors from either field; None when neither was given."""
    if contributors is not UNSET and byline is not UNSET:
        raise BylineAndContributors("give either byline or contributors, not both", field="byline")
    if byline is not UNSET:
        return [] if byline is None else [Contributor(name=clean_text(byline, "byline"))]
    if contributors is UNSET:
        return None
    return [
        Contributor(
            name=clean_text(c.name, f"contributors[{i}].name"),
            role=clean_text(c.role, f"contributors[{i}].role") if c.role else None,
        )
        for i, c in enumerate(contributors)
    ]


def _clean_names(names: list[str]) -> list[str]:
    return [clean_text(name, f"editors[{i}]") for i, name in enumerate(names)]


def require_slug(coverage_id: str) -> None:
    """The schema pattern's `$` lets a trailing newline through; this check does not."""
    if not is_coverage_id(coverage_id):
        raise InvalidField("id must be a slug: lowercase letters, digits and hyphens", field="id")


def require_coverage(coverage: CoverageState | None, coverage_id: str) -> CoverageState:
    if coverage is None:
        raise CoverageNotFound(f"no coverage {coverage_id!r}", coverage_id=coverage_id)
    return coverage


def require_live(coverage: CoverageState | None, coverage_id: str) -> CoverageState:
    coverage = require_coverage(coverage, coverage_id)
    if coverage.status == "ended":
        raise CoverageAlreadyEnded(f"coverage {coverage_id!r} has ended; reopen it first", coverage_id=coverage_id)
    return coverage


def require_post(post: PostState | None, coverage_id: str, post_id: str) -> PostState:
    if post is None or post.coverage_id != coverage_id:
        raise PostNotFound(f"no post {post_id} in coverage {coverage_id!r}", post_id=post_id)
    return post


def require_unretracted(post: PostState | None, coverage_id: str, post_id: str) -> PostState:
    post = require_post(post, coverage_id, post_id)
    if post.retracted:
        raise PostAlreadyRetracted(f"post {post_id} was retracted", post_id=post_id)
    return post


def decide_open(existing: CoverageState | None, request: OpenCoverage) -> CoverageOpened:
    require_slug(request.id)
    if existing is not None:
        raise CoverageAlreadyExists(f"coverage {request.id!r} already exists", coverage_id=request.id)
    _check_timezone(request.timezone)
    return CoverageOpened(
        title=clean_text(request.title, "title"),
        summary=_clean_optional(request.summary, "summary"),
        editors=_clean_names(request.editors),
        timezone=request.timezone,
    )


def decide_update(coverage: CoverageState | None, coverage_id: str, request: UpdateCoverage) -> CoverageUpdated:
    require_live(coverage, coverage_id)
    if all(getattr(request, name) is UNSET for name in request.__struct_fields__):
        raise NothingToChange("give at least one of title, summary, editors, timezone")
    _check_timezone(request.timezone)
    return CoverageUpdated(
        title=_clean_optional(request.title, "title"),
        summary=_clean_optional(request.summary, "summary"),
        editors=_clean_names(request.editors) if isinstance(request.editors, list) else UNSET,
        timezone=request.timezone,
    )


def decide_end(coverage: CoverageState | None, coverage_id: str) -> CoverageEnded:
    require_live(coverage, coverage_id)
    return CoverageEnded()


def decide_reopen(coverage: CoverageState | None, coverage_id: str) -> CoverageReopened:
    coverage = require_coverage(coverage, coverage_id)
    if coverage.status == "live":
        raise CoverageStillLive(f"coverage {coverage_id!r} is live already", coverage_id=coverage_id)
    return CoverageReopened()


def decide_publish(coverage: CoverageState | None, coverage_id: str, request: PublishPost) -> PostPublished:
    require_live(coverage, coverage_id)
    return PostPublished(
        title=_clean_optional(request.title, "title"),
        body=clean_body(request.body),
        contributors=_contributors(request.contributors, request.byline) or [],
        key_event=request.key_event,
    )


def decide_edit(
    coverage: CoverageState | None,
    post: PostState | None,
    coverage_id: str,
    post_id: str,
    request: EditPost,
    expected_revision: int | None,
) -> PostEdited:
    require_live(coverage, coverage_id)
    current = require_unretracted(post, coverage_id, post_id)
    if expected_revision is not None and expected_revision != current.revision:
        raise RevisionMismatch(
            f"post {post_id} is at revision {current.revision}, not {expected_revision}",
            post_id=post_id,
            revision=current.revision,
        )
    content = ("title", "body", "contributors", "byline", "key_event")
    if all(getattr(request, name) is UNSET for name in content):
        raise NothingToChange("give at least one of title, body, contributors (or byline), key_event")
    contributors = _contributors(request.contributors, request.byline)
    return PostEdited(
        title=_clean_optional(request.title, "title"),
        body=clean_body(request.body) if isinstance(request.body, list) else UNSET,
        contributors=UNSET if contributors is None else contributors,
        key_event=request.key_event,
        note=_clean_optional(request.note, "note"),
    )


def decide_retract(
    coverage: CoverageState | None,
    post: PostState | None,
    coverage_id: str,
    post_id: str,
    request: RetractPost,
) -> PostRetracted:
    require_live(coverage, coverage_id)
    require_unretracted(post, coverage_id, post_id)
    return PostRetracted(reason=clean_text(request.reason, "reason"))


def decide_redact(
    coverage: CoverageState | None, post: PostState | None, coverage_id: str, post_id: str, request: RedactPost
) -> PostRedacted:
    """Erasure works on any post of any coverage, live or ended, retracted or not; once."""
    require_coverage(coverage, coverage_id)
    found = require_post(post, coverage_id, post_id)
    if found.redacted:
        raise PostAlreadyRedacted(f"post {post_id} was already redacted", post_id=post_id)
    return PostRedacted(
        reason=clean_text(request.reason, "reason"),
        legal_reference=clean_text(request.legal_reference, "legal_reference"),
    )


def decide_pin(
    coverage: CoverageState | None, post: PostState | None, coverage_id: str, post_id: str
) -> list[EventData]:
    """Pinning the post already pinned changes nothing and appends nothing."""
    current = require_live(coverage, coverage_id)
    try:
        require_unretracted(post, coverage_id, post_id)
    except PostNotFound as exc:  # the pin is there to change; what names nothing is the request's body
        raise NoSuchPostToPin(f"coverage {coverage_id!r} has no post {post_id} to pin", post_id=post_id) from exc
    if current.pinned_post_id == post_id:
        return []
    return [PostPinned()]


def decide_unpin(coverage: CoverageState | None, coverage_id: str) -> list[EventData]:
    """Unpinning when nothing is pinned changes nothing and appends nothing."""
    current = require_live(coverage, coverage_id)
    return [] if current.pinned_post_id is None else [PostUnpinned()]
