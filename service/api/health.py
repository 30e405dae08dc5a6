"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

import asyncpg
from litestar import Response, get
from litestar.di import NamedDependency
from msgspec import Struct

from service.store import schema
from service.store.pool import DATABASE_FAULTS


class Health(Struct, frozen=True, omit_defaults=True):
    status: str
    detail: str | None = None


@get("/health", operation_id="health", summary="The process is up", tags=["operations"], cache=False)
async def health() -> Health:
    return Health("ok")


READY_FAULTS = DATABASE_FAULTS


@get(
    "/ready",
    operation_id="ready",
    summary="The database is reachable and migrated to head",
    tags=["operations"],
    responses={},
)
async def ready(pool: NamedDependency[asyncpg.Pool]) -> Response[Health]:
    try:
        async with pool.acquire(timeout=2) as conn:
            at_head = await schema.is_at_head(conn)
    except READY_FAULTS as exc:
        return Response(Health("unavailable", f"database unreachable: {type(exc).__name__}"), status_code=503)
    if not at_head:
        return Response(Health("unavailable", "database is not migrated to head"), status_code=503)
    return Response(Health("ready"))
