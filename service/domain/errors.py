"""Every error a client can cause, named in the newsroom's words; the API maps each one to a problem once."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A request refused for the client's own reason: `detail` says why, `extra` carries what a client may act on
    (a post id, the current revision, a tombstone). The base of the domain's refusals and of the API's own
    (api/unusable.py)."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class DomainError(Refusal):
    """A command refused by the rules of the domain. What each becomes over HTTP (status, problem type, title) is
    the API's business: `api/problems.py` maps them."""


class CoverageNotFound(DomainError):
    """No coverage by that id."""


class PostNotFound(DomainError):
    """No post by that id in the coverage."""


class UnknownTimeZone(DomainError):
    """A time zone name that is not one of the IANA names accepted (the OpenAPI document lists them)."""


class MalformedUrl(DomainError):
    """A URL in a post that is not http(s) or carries control characters (the OpenAPI document excludes it)."""


class BylineAndContributors(DomainError):
    """A post given both `byline` and `contributors` (the OpenAPI document excludes it: `not` both required)."""


class NoSuchPostToPin(DomainError):
    """A pin names a post the coverage does not have. Not a PostNotFound: the pin itself is there to change; what
    is wrong is the request's content."""


class CoverageAlreadyExists(DomainError):
    """Opening a coverage under an id already taken."""


class CoverageAlreadyEnded(DomainError):
    """Changing a coverage that has ended (reopen it first)."""


class CoverageStillLive(DomainError):
    """Reopening a coverage that has not ended."""


class PostAlreadyRetracted(DomainError):
    """Changing or pinning a post that was retracted or redacted."""


class PostAlreadyRedacted(DomainError):
    """Redacting a post twice."""


class PostGone(DomainError):
    """Reading a retracted or redacted post: the tombstone travels in the problem body."""


class RevisionMismatch(DomainError):
    """An edit guarded by If-Match whose revision is no longer current."""


class NothingToChange(DomainError):
    """A change that changes nothing."""


class UnsafeMarkup(DomainError):
    """Text that carries active content (script, event handlers, javascript: URLs)."""


class IdempotencyKeyReused(DomainError):
    """An Idempotency-Key first used for another request."""


class InvalidField(DomainError):
    """A field with a value the rules refuse beyond what the OpenAPI document states (an id that is no slug, text
    empty once markup is removed)."""


class BeyondTheLog(DomainError):
    """A tree size or an event the coverage's transparency log does not have (yet): no such checkpoint or proof."""


class LogInconsistent(DomainError):
    """The stored log lacks an event its coverage's version says exists: auditors should run `verify`."""
