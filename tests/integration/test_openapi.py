"""The committed OpenAPI document is exactly what the app generates."""

from __future__ import annotations

import json
from pathlib import Path

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
