"""Every domain error has its HTTP problem: a new error without one would fall through as a 500."""

from __future__ import annotations

from service.api.problems import DOMAIN_PROBLEMS
from service.domain import errors


def test_every_domain_error_is_mapped_once_to_a_distinct_problem_type() -> None:
    declared = {
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError) and value is not errors.DomainError
    }  # fmt: skip
    assert declared == set(DOMAIN_PROBLEMS)
    slugs = [slug for _, slug, _ in DOMAIN_PROBLEMS.values()]
    assert len(slugs) == len(set(slugs))
    assert all(400 <= status < 500 for status, _, _ in DOMAIN_PROBLEMS.values())
