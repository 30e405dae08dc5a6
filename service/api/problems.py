"""Every error as an RFC 9457 problem: domain errors mapped once here, litestar's HTTP errors by its plugin."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from msgspec import Struct

from service.api import unusable
from service.api.quotas import WriteQuotaExceeded
from service.api.unusable import UnusableValue
from service.domain import errors
from service.domain.errors import DomainError, Refusal
from service.store.pool import UNAVAILABLE

PROBLEM_TYPE = "urn:liveline:problem:"
log = logging.getLogger("liveline.api")


DOMAIN_PROBLEMS: dict[type[DomainError], tuple[int, str, str]] = {
    errors.CoverageNotFound: (404, "coverage-not-found", "Coverage not found"),
    errors.PostNotFound: (404, "post-not-found", "Post not found"),
    errors.MalformedUrl: (400, "malformed-url", "Not an http(s) URL without control characters"),
    errors.BylineAndContributors: (400, "byline-and-contributors", "Both byline and contributors given"),
    errors.UnknownTimeZone: (400, "unknown-time-zone", "Not an IANA time zone name"),
    errors.NoSuchPostToPin: (422, "no-such-post", "No such post to pin"),
    errors.CoverageAlreadyExists: (409, "coverage-exists", "Coverage already exists"),
    errors.CoverageAlreadyEnded: (409, "coverage-ended", "Coverage has ended"),
    errors.CoverageStillLive: (409, "coverage-live", "Coverage is live"),
    errors.PostAlreadyRetracted: (409, "post-retracted", "Post has been retracted"),
    errors.PostAlreadyRedacted: (409, "post-redacted", "Post has already been redacted"),
    errors.PostGone: (410, "post-gone", "Post has been withdrawn"),
    errors.RevisionMismatch: (412, "stale-revision", "Post has changed since that revision"),
    errors.NothingToChange: (422, "nothing-to-change", "The request changes nothing"),
    errors.UnsafeMarkup: (422, "unsafe-markup", "Text carries active content"),
    errors.IdempotencyKeyReused: (422, "idempotency-key-reused", "Idempotency key already used for another request"),
    errors.InvalidField: (422, "invalid-field", "A field has an invalid value"),
    errors.BeyondTheLog: (404, "beyond-the-log", "Beyond the coverage's log"),
    errors.LogInconsistent: (409, "log-inconsistent", "The stored log is not whole"),
}
"""What each domain error is over HTTP: status, problem type (urn:liveline:problem:<slug>) and title. The one
place the domain's refusals meet HTTP (a test checks every domain error is here)."""

UNUSABLE_PROBLEMS: dict[type[UnusableValue], tuple[int, str, str]] = {
    unusable.InvalidCursor: (422, "invalid-cursor", "Unusable cursor"),
    unusable.InvalidPageToken: (422, "invalid-page-token", "Unusable pagination value"),
    unusable.InvalidAsOf: (422, "invalid-as-of", "Unusable as_of"),
}
"""The same for the API's own refusals of parameter values (api/unusable.py)."""


_REFUSALS: dict[type[Refusal], tuple[int, str, str]] = {
    kind: problem for table in (DOMAIN_PROBLEMS, UNUSABLE_PROBLEMS) for kind, problem in table.items()
}


def refusal_problem(exc: Refusal) -> ProblemDetailsException:
    """A domain error, or a parameter value the API cannot use, as its problem."""
    status, slug, title = _REFUSALS[type(exc)]
    return ProblemDetailsException(
        status_code=status, title=title, detail=exc.detail, type_=PROBLEM_TYPE + slug, extra=exc.extra or None
    )


def undecodable_body(exc: UnicodeDecodeError) -> ProblemDetailsException:
    """litestar lets msgspec's UnicodeDecodeError through as a 500; it is the client's bad UTF-8."""
    return ProblemDetailsException(
        status_code=400,
        title="Request body is not valid UTF-8",
        detail=f"byte {exc.start} cannot be decoded as UTF-8",
        type_=PROBLEM_TYPE + "bad-encoding",
    )


def database_unavailable(exc: Exception) -> ProblemDetailsException:
    """The database is down or restarting: our outage, not the client's mistake, and worth a retry."""
    log.warning("database unavailable: %s", type(exc).__name__)
    return ProblemDetailsException(
        status_code=503,
        title="Database unavailable",
        detail="the database is unreachable or restarting; retry shortly",
        type_=PROBLEM_TYPE + "database-unavailable",
        headers={"Retry-After": "2"},
    )


def over_quota(exc: WriteQuotaExceeded) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=429,
        title="Write quota exceeded",
        detail=exc.detail,
        type_=PROBLEM_TYPE + "write-quota",
        headers={"Retry-After": str(exc.retry_after)},
    )


_HTTP_PROBLEMS = {
    400: ("invalid-request", "Invalid request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed for this token"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
}


def http_problem(exc: HTTPException) -> ProblemDetailsException:
    """litestar's own errors (parameter validation, routing, guards) as problems with a documented type; the
    validation messages go in `errors`."""
    slug, title = _HTTP_PROBLEMS.get(exc.status_code, (f"http-{exc.status_code}", HTTPStatus(exc.status_code).phrase))
    extra: dict[str, Any] | None = None
    if isinstance(exc.extra, list) and exc.extra:
        extra = {"errors": exc.extra}
    elif isinstance(exc.extra, dict) and exc.extra:
        extra = exc.extra
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=title,
        detail=exc.detail,
        type_=PROBLEM_TYPE + slug,
        headers=exc.headers,
        extra=extra,
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Our fault, never the client's: logged with the request id, answered without internals."""
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("unhandled error", extra={"request_id": request_id})
    problem = ProblemDetailsException(
        status_code=500,
        title="Internal server error",
        detail="the server failed to answer; the request id identifies it in the logs",
        type_=PROBLEM_TYPE + "internal",
        extra={"request_id": request_id},
    )
    return problem.to_response(request)


def problem_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                HTTPException: http_problem,
                Refusal: refusal_problem,
                UnicodeDecodeError: undecodable_body,
                WriteQuotaExceeded: over_quota,
                **dict.fromkeys(UNAVAILABLE, database_unavailable),
            },
        )
    )


class Problem(Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details; domain problems add fields such as `tombstone` or `revision`."""

    type: str
    """`urn:liveline:problem:<slug>`; each status's description lists the slugs it may carry."""
    status: int
    title: str
    detail: str | None = None


_DESCRIPTIONS = {
    400: "Outside this document: bad JSON or UTF-8, unknown fields, a parameter or field it excludes",
    401: "Missing, malformed, unknown or revoked bearer token",
    403: "The token's role may not do this",
    404: "No such coverage or post",
    409: "Conflicts with current state (ended coverage, retracted or redacted post, existing id)",
    410: "The post was retracted or redacted; the problem carries its tombstone",
    412: "If-Match names a revision that is no longer current",
    413: "Request body over the size limit",
    422: (
        "Allowed by this document but refused for what it says: unsafe markup, text empty once markup is removed, "
        "a reused Idempotency-Key, nothing to change, a pin naming no post of the coverage, a cursor, page token "
        "or as_of this API did not hand out (or one ahead of the log)"
    ),
    429: "The token is over its write quota; Retry-After says when to try again",
    503: "The database is unavailable, or the service is shedding writes; retry after Retry-After",
}


_ELSEWHERE = {
    400: {"bad-encoding", "body-shape"},  # undecodable_body above; the edge's shape check (api/edge.py)
    429: {"write-quota"},
    503: {"database-unavailable", "overloaded"},  # database_unavailable above; the edge's load shedding
}


def _types_by_status() -> dict[int, list[str]]:
    """Every problem `type` the service answers, by status: the domain's errors, litestar's and the edge's."""
    found: dict[int, set[str]] = {status: set(slugs) for status, slugs in _ELSEWHERE.items()}
    for status, (slug, _) in _HTTP_PROBLEMS.items():
        found.setdefault(status, set()).add(slug)
    for status, slug, _ in _REFUSALS.values():
        found.setdefault(status, set()).add(slug)
    return {status: sorted(slugs) for status, slugs in found.items()}


def _described(code: int) -> str:
    types = ", ".join(f"`{PROBLEM_TYPE}{slug}`" for slug in _types_by_status().get(code, []))
    return f"{_DESCRIPTIONS[code]}. Problem types: {types}" if types else _DESCRIPTIONS[code]


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route can answer with, each naming the problem types it may carry."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=_described(code),
            media_type="application/problem+json",
            generate_examples=False,
        )
        for code in sorted({400, *codes, 503})
    }
