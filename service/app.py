"""create_app(settings) -> Litestar: wiring only (plugins, routes, lifespan)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import metadata

from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import Receive, Scope, Send

from service import keys, logs
from service.api.audit import AuditController
from service.api.contract import Routes, state_exactly
from service.api.coverages import CoverageController, get_coverage, list_coverages
from service.api.dependencies import DEPENDENCIES
from service.api.edge import edge
from service.api.health import health, ready
from service.api.live import CoverageVersions, RenderedPages, SharedReads
from service.api.metrics import SQL_STATEMENTS, MetricsController, count_statement
from service.api.posts import PostController, get_post, get_post_history
from service.api.problems import internal_error, problem_plugin
from service.api.quotas import WriteQuotas
from service.api.readers import ReaderController
from service.api.request_bodies import strict_body
from service.api.transparency import Logs, TransparencyController
from service.api.views import EncodedPosts
from service.config import Settings
from service.projections import read_model
from service.store import schema
from service.store.listen import ChangeListener
from service.store.pool import Statements, create_pool

VERSION = metadata.version("liveline")
"""From the installed package (pyproject.toml), so the document and the package never disagree."""
STATEMENT_CONNECTIONS = 8
"""Connections (`Statements`) for the timeline renders and every request's token lookup, beside the main pool:
each is lent for one statement at a time. With 4, renders queued for a connection whenever a burst of them
came (each a wait and a wake on the event loop more): 8 rendered 1.09 times the pages a second at 0.92 times
the CPU a page (ten alternating rounds side by side). With the main pool's 10 and the LISTEN connection, a
worker holds 19, so four workers fit PostgreSQL's default of 100."""
STATEMENTS_NAME = "liveline pages"
"""Their application_name, as pg_stat_activity shows it."""


class NotMigrated(RuntimeError):
    pass


def served(app: Litestar) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """What a `liveline serve` worker hands granian: HTTP requests straight to the edge, lifespan to litestar.

    Litestar's own `__call__` would only mark the scope with the app on the way (done here) and stay on the stack
    as one more coroutine frame for as long as the request lasts: for an open stream, hours.
    """
    if app.before_send:
        raise ValueError("the edge is entered without litestar's before_send hooks: remove them or this")
    handle = app.asgi_handler

    def enter(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != ScopeType.HTTP:
            return app(scope, receive, send)
        scope["app"] = scope["litestar_app"] = app
        return handle(scope, receive, send)

    return enter


def close_streams_on_signals(versions: CoverageVersions) -> None:
    """Under granian, end long polls and streams as soon as SIGTERM/SIGINT arrive.

    granian drains open connections before it runs the lifespan shutdown, so an open stream would hold the
    worker forever. Its own handler is registered through the event loop, which is woken through the
    signal wakeup fd; replacing only the Python-level handler keeps that path intact and adds ours.
    """
    loop = asyncio.get_running_loop()

    def on_signal(_signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(versions.close)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


def create_app(settings: Settings | None = None, *, worker: bool = False) -> Litestar:
    """The app; `worker=True` when it runs in a `liveline serve` worker process (see close_streams_on_signals)."""
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    pages = RenderedPages(settings.rendered_cache_size)
    versions = CoverageVersions(on_advance=pages.drop_older)
    known_posts = read_model.KnownPosts()
    encoded_posts = EncodedPosts()

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set: start the service with `liveline serve`")
        timeouts = {
            "statement_timeout": f"{int(settings.statement_timeout * 1000)}",
            "lock_timeout": f"{int(settings.lock_timeout * 1000)}",
            "idle_in_transaction_session_timeout": f"{int(settings.idle_in_transaction_timeout * 1000)}",
        }
        async with AsyncExitStack() as opened:  # each pool closes even when a later step fails
            pool = await create_pool(
                settings.database_url,
                settings.pool_min_size,
                settings.pool_max_size,
                on_query=count_statement,
                timeouts=timeouts,
            )
            opened.push_async_callback(pool.close)
            # The timeline renders (api/timeline.py) and token lookups (api/auth.py): one statement each.
            statements = Statements(
                settings.database_url,
                STATEMENT_CONNECTIONS,
                {**timeouts, "application_name": STATEMENTS_NAME},
                SQL_STATEMENTS.inc,
            )
            opened.push_async_callback(statements.close)
            async with pool.acquire() as conn:
                if not await schema.is_at_head(conn):
                    raise NotMigrated("the database is not migrated to head: run `liveline migrate`")
            app.state.pool = pool
            app.state.statements = statements
            reads: SharedReads = app.state.reads

            def forget(coverage_id: str) -> None:
                pages.forget(coverage_id)
                reads.forget(coverage_id)
                known_posts.forget(coverage_id)
                encoded_posts.forget(coverage_id)

            def connected(listening: bool, epoch: int) -> None:
                known_posts.forget()  # the reader tables may have been rebuilt meanwhile (a new fold)
                encoded_posts.forget()
                versions.connected(listening, epoch)

            listener = ChangeListener(settings.database_url, versions.observe, connected, forget)
            listener.start()
            if worker:
                close_streams_on_signals(versions)
            try:
                yield
            finally:
                versions.close()  # long polls and streams end now, not when the server gives up on them
                await listener.stop()
                logs.ACCESS.flush()  # a worker process exits without running atexit's callbacks

    app = Litestar(
        # Controllers first: litestar 2 merges a handler into a path's route only when the route came before it,
        # and the public reads share their paths with the newsroom's guarded controllers.
        route_handlers=[
            CoverageController,
            ReaderController,
            PostController,
            AuditController,
            TransparencyController,
            MetricsController,
            list_coverages,
            get_coverage,
            get_post,
            get_post_history,
            health,
            ready,
        ],
        dependencies=DEPENDENCIES,
        plugins=[problem_plugin()],
        exception_handlers={Exception: internal_error},
        before_request=strict_body,
        lifespan=[database],
        state=State(
            {
                "settings": settings,
                "versions": versions,
                "pages": pages,
                "reads": SharedReads(),
                "known_posts": known_posts,
                "encoded_posts": encoded_posts,
                "quotas": WriteQuotas(settings.write_quota_per_minute, settings.write_quota_burst),
                "logs": Logs(keys.signer(settings)),
            }
        ),
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
    state_exactly(app.openapi_schema)
    # In front of litestar's router: request ids, CORS, metrics, access log, and the fast path (api/fast_path.py).
    app.asgi_handler = edge(app.asgi_handler, settings, app.state, Routes(app.openapi_schema))
    return app
