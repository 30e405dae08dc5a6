"""Every domain error, and every refusal of a parameter value, has its HTTP problem: a new error without one would
fall through as a 500."""

from __future__ import annotations

from service.api import unusable
from service.api.problems import DOMAIN_PROBLEMS, UNUSABLE_PROBLEMS
from service.domain import errors


def test_every_domain_error_is_mapped_once_to_a_distinct_problem_type() -> None:
    declared = {
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError) and value is not errors.DomainError
    }  # fmt: skip
    assert declared == set(DOMAIN_PROBLEMS)
    refusals = {
        value for value in vars(unusable).values()
        if isinstance(value, type) and issubclass(value, unusable.UnusableValue) and value is not unusable.UnusableValue
    }  # fmt: skip
    assert refusals == set(UNUSABLE_PROBLEMS)
    mapped = [*DOMAIN_PROBLEMS.values(), *UNUSABLE_PROBLEMS.values()]
    slugs = [slug for _, slug, _ in mapped]
    assert len(slugs) == len(set(slugs))
    assert all(400 <= status < 500 for status, _, _ in mapped)
    assert all(status == 422 for status, _, _ in UNUSABLE_PROBLEMS.values()), "allowed by the document, so not a 400"
