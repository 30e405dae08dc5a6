"""create_app(settings) -> Litestar: wiring only (plugins, routes, lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from service.api.coverages import CoverageController
from service.api.dependencies import DEPENDENCIES
from service.api.health import health, ready
from service.api.live import CoverageVersions, RenderedPages
from service.api.posts import PostController
from service.api.problems import internal_error, problem_plugin
from service.api.readers import ReaderController
from service.api.request_id import request_id_middleware
from service.config import Settings
from service.store import schema
from service.store.listen import ChangeListener
from service.store.pool import create_pool

VERSION = "0.1.0"


class NotMigrated(RuntimeError):
    pass


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    versions = CoverageVersions()

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set: start the service with `liveline serve`")
        pool = await create_pool(settings.database_url, settings.pool_min_size, settings.pool_max_size)
        try:
            async with pool.acquire() as conn:
                if not await schema.is_at_head(conn):
                    raise NotMigrated("the database is not migrated to head: run `liveline migrate`")
            app.state.pool = pool
            listener = ChangeListener(settings.database_url, versions.observe, versions.connected)
            listener.start()
            try:
                yield
            finally:
                versions.closing.set()  # long polls and streams end now, not when the server gives up on them
                await listener.stop()
        finally:
            await pool.close()

    return Litestar(
        route_handlers=[CoverageController, ReaderController, PostController, health, ready],
        dependencies=DEPENDENCIES,
        plugins=[problem_plugin()],
        exception_handlers={Exception: internal_error},
        middleware=[request_id_middleware],
        lifespan=[database],
        state=State({"settings": settings, "versions": versions, "pages": RenderedPages(settings.rendered_cache_size)}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Liveline",
            version=VERSION,
            description="Event-sourced backend for live-coverage pages.",
            path="/schema",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")},
            ),
        ),
    )
