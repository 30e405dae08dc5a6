"""Every error a client can cause, named in the newsroom's words; the API maps each one to a problem once."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A command refused by the rules of the domain."""

    status: ClassVar[int] = 409
    slug: ClassVar[str] = "conflict"
    title: ClassVar[str] = "Conflict"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class CoverageNotFound(DomainError):
    status = 404
    slug = "coverage-not-found"
    title = "Coverage not found"


class PostNotFound(DomainError):
    status = 404
    slug = "post-not-found"
    title = "Post not found"


class CoverageAlreadyExists(DomainError):
    slug = "coverage-exists"
    title = "Coverage already exists"


class CoverageEnded(DomainError):
    slug = "coverage-ended"
    title = "Coverage has ended"


class CoverageStillLive(DomainError):
    slug = "coverage-live"
    title = "Coverage is live"


class PostRetracted(DomainError):
    slug = "post-retracted"
    title = "Post has been retracted"


class PostRedactedAlready(DomainError):
    slug = "post-redacted"
    title = "Post has already been redacted"


class PostGone(DomainError):
    """Reading a retracted post: the tombstone travels in the problem body."""

    status = 410
    slug = "post-gone"
    title = "Post has been retracted"


class RevisionMismatch(DomainError):
    status = 412
    slug = "stale-revision"
    title = "Post has changed since that revision"


class NothingToChange(DomainError):
    status = 422
    slug = "nothing-to-change"
    title = "The request changes nothing"


class UnsafeMarkup(DomainError):
    status = 422
    slug = "unsafe-markup"
    title = "Text carries active content"


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency key already used for another request"


class InvalidPageToken(DomainError):
    status = 400
    slug = "invalid-page-token"
    title = "Malformed pagination value"


class InvalidField(DomainError):
    status = 422
    slug = "invalid-field"
    title = "A field has an invalid value"


class InvalidCursor(DomainError):
    status = 400
    slug = "invalid-cursor"
    title = "Unusable cursor"


class InvalidAsOf(DomainError):
    status = 400
    slug = "invalid-as-of"
    title = "Unusable as_of"


class BeyondTheLog(DomainError):
    """A tree size or an event the coverage's transparency log does not have (yet): no such checkpoint or proof."""

    status = 404
    slug = "beyond-the-log"
    title = "Beyond the coverage's log"


class LogInconsistent(DomainError):
    """The stored log lacks an event its coverage's version says exists: auditors should run `verify`."""

    status = 409
    slug = "log-inconsistent"
    title = "The stored log is not whole"
