"""The committed OpenAPI document is exactly what the app generates."""

from __future__ import annotations

import json
from pathlib import Path

from service.api.caching import READ_PARAMETERS
from service.openapi import document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def generated() -> str:
    return document()


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == generated(), (
        "openapi/openapi.json is stale: regenerate it with `python -m service.openapi > openapi/openapi.json`"
    )


def test_every_operation_has_an_id_a_summary_and_problem_responses() -> None:
    document = json.loads(generated())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("operationId"), (method, path)
            assert operation.get("summary"), (method, path)
            if path.startswith("/v1"):
                assert "application/problem+json" in operation["responses"]["400"]["content"], (method, path)


def test_the_cache_key_keeps_every_parameter_a_cached_read_takes() -> None:
    """A read's cache key leaves out parameters no read takes (api/caching.py): it must keep every one the document
    lists for a read answered from the cache, or two different answers would share one entry."""
    paths = json.loads(generated())["paths"]
    cached = ["", "/timeline", "/changes", "/posts/{post_id}", "/posts/{post_id}/history"]
    taken = {
        parameter["name"]
        for tail in cached
        for parameter in paths[f"/v1/coverages/{{coverage_id}}{tail}"]["get"].get("parameters", [])
        if parameter["in"] == "query"
    }
    assert taken == READ_PARAMETERS
