"""Parameter values the OpenAPI document allows but the API cannot use: a cursor or page token it did not hand
out (or one for another coverage or order, or ahead of the log), an `as_of` no coverage version or time answers
to. The API's own refusals, apart from the domain's (domain/errors.py); api/problems.py makes each a 422 problem."""

from __future__ import annotations

from service.domain.errors import Refusal


class UnusableValue(Refusal):
    pass


class InvalidCursor(UnusableValue):
    """A cursor this API did not hand out, or one ahead of its coverage."""


class InvalidPageToken(UnusableValue):
    """A pagination value this API did not hand out."""


class InvalidAsOf(UnusableValue):
    """An as_of that names no version or moment of the coverage."""
