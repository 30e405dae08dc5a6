"""The plumbing every write route shares: who asks, request id, Idempotency-Key, running the command."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.params import HeaderParameter

from service.domain.errors import CoverageNotFound
from service.domain.events import Metadata
from service.domain.ids import is_coverage_id
from service.writes import Answer, Decide, Idempotency, Respond, execute

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_canonical = msgspec.json.Encoder(order="sorted")


IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        pattern=_KEY.pattern,
        description="Retrying with the same key and body returns the first answer and appends nothing",
    ),
]


def idempotency_of(request: Request[Any, Any, State], key: str | None, data: object) -> Idempotency | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise ClientException("Idempotency-Key must be 1-255 visible ASCII characters")
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(_canonical.encode(data))
    return Idempotency(key, digest.hexdigest())


def metadata_of(request: Request[Any, Any, State], idempotency: Idempotency | None) -> Metadata:
    return Metadata(
        actor=request.state.holder.name,
        request_id=request.state.get("request_id"),
        idempotency_key=idempotency.key if idempotency else None,
    )


async def run(
    request: Request[Any, Any, State],
    pool: asyncpg.Pool,
    *,
    coverage_id: str,
    post_id: str | None = None,
    data: object = None,
    idempotency_key: str | None = None,
    decide: Decide,
    respond: Respond,
) -> Response[Any]:
    """Execute a command for this request, honouring an Idempotency-Key when the route takes one."""
    if not is_coverage_id(coverage_id):
        raise CoverageNotFound(f"no coverage {coverage_id!r}", coverage_id=coverage_id)
    key = idempotency_of(request, idempotency_key, data)
    versions = request.app.state.versions
    # Taken before the write: if the LISTEN connection drops and comes back meanwhile, notifications of other
    # writes may have been missed, and this version alone must not become what the process believes is latest.
    generation = versions.generation
    answer, version = await execute(
        pool,
        coverage_id=coverage_id,
        post_id=post_id,
        metadata=metadata_of(request, key),
        idempotency_key=key,
        decide=decide,
        respond=respond,
        wait=request.app.state.settings.pool_acquire_timeout,
    )
    if version is not None:
        # Readers on this process see the write at once, before its notification comes round.
        versions.observe(coverage_id, version, generation)
    return as_response(answer)


def as_response(answer: Answer) -> Response[Any]:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type="application/json")
