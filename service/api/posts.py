"""Posts of a coverage: publish, read, edit, retract, and each post's history."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter, JSONBody

from service.api.auth import ADMINS, EDITORS, authenticate, may, require_role
from service.api.caching import PRIVATE, conditional_json, coverage_read, encode, public_cache_control
from service.api.coverages import find_coverage
from service.api.problems import problems
from service.api.views import (
    PostHistory,
    PostView,
    Tombstone,
    history_entry,
    post_view,
    tombstone,
)
from service.api.writing import IdempotencyKeyHeader, run
from service.config import Settings
from service.domain import commands
from service.domain.commands import EditPost, PublishPost, RedactPost, RetractPost
from service.domain.errors import PostGone, PostNotFound
from service.domain.events import EventData
from service.domain.ids import is_post_id, new_post_id
from service.domain.state import CoverageState, PostState, post_history
from service.projections import read_model
from service.store import events
from service.store.pool import Connection, snapshot
from service.writes import Answer, Change, Respond

# A post's ETag, as GET sent it: the revision, marked when pinned, and by its content coding when compressed.
_IF_MATCH = re.compile(r'^"([0-9]{1,9})(?:\.pinned)?(?:\.gz|\.br)?"$')


def post_etag(post: PostState, pinned_post_id: str | None) -> str:
    """The revision, marked when pinned: `If-Match` with this value guards an edit."""
    return f'"{post.revision}.pinned"' if post.id == pinned_post_id else f'"{post.revision}"'


def view_etag(view: object) -> str:
    assert isinstance(view, PostView)
    return f'"{view.revision}.pinned"' if view.pinned else f'"{view.revision}"'


IfMatchHeader = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        pattern=r'^[ \t]*(\*|"[0-9]{1,9}(\.pinned)?(\.gz|\.br)?")?[ \t]*$',  # OWS is space and tab (RFC 9110)
        description='The post\'s ETag, e.g. "3": refuse (412) if it moved on',
    ),
]


def expected_revision(header: str | None) -> int | None:
    """The revision If-Match requires, or None for none. An empty If-Match is an empty list of entity tags (RFC 9110
    section 13.1.1 allows it): no revision matches it, so the edit is refused with 412 as a stale one is (no post
    is at revision 0)."""
    value = None if header is None else header.strip()
    if value is None or value == "*":
        return None
    if not value:
        return 0
    match = _IF_MATCH.match(value)
    if match is None:
        raise ClientException('If-Match must be the post\'s ETag, e.g. "3"')
    return int(match[1])


def post_not_found(coverage_id: str, post_id: str) -> PostNotFound:
    return PostNotFound(f"no post {post_id} in coverage {coverage_id!r}", post_id=post_id)


async def find_post(conn: Connection, coverage_id: FromPath[str], post_id: FromPath[str]) -> PostState:
    found = await read_model.load_post(conn, post_id) if is_post_id(post_id) else None
    if found is None or found.coverage_id != coverage_id:
        raise post_not_found(coverage_id, post_id)
    return found


def _post_answer(status: int) -> Any:
    async def respond(_: asyncpg.Connection, coverage: CoverageState | None, post: PostState | None) -> Answer:
        assert coverage is not None and post is not None
        headers = {"ETag": post_etag(post, coverage.pinned_post_id)}
        if status == 201:
            headers["Location"] = f"/v1/coverages/{coverage.id}/posts/{post.id}"
        return Answer(status, encode(post_view(post, coverage.pinned_post_id)), headers)

    return respond


async def _tombstone_answer(_: Connection, __: CoverageState | None, post: PostState | None) -> Answer:
    assert post is not None
    return Answer(200, encode(tombstone(post)))


async def _withdraw(
    request: Request[Any, Any, State],
    pool: asyncpg.Pool,
    coverage_id: str,
    post_id: str,
    data: Any,
    idempotency_key: str | None,
    decide: Callable[[CoverageState | None, PostState | None, str, str, Any], EventData],
    respond: Respond,
) -> Response[Tombstone]:
    """Retract or redact: one event about one post, answered with its tombstone."""
    if not is_post_id(post_id):
        raise post_not_found(coverage_id, post_id)
    return await run(
        request,
        pool,
        coverage_id=coverage_id,
        post_id=post_id,
        data=data,
        idempotency_key=idempotency_key,
        decide=lambda coverage, current: [Change(post_id, decide(coverage, current, coverage_id, post_id, data))],
        respond=respond,
    )


async def _redaction_answer(_: Connection, __: CoverageState | None, post: PostState | None) -> Answer:
    assert post is not None
    return Answer(200, encode(tombstone(post, full=True)))


class PostController(Controller):
    """The newsroom's side of posts: every route needs an editor's token (redaction an admin's). What anyone may
    read is below it, as plain handlers (see `CoverageController`)."""

    path = "/v1/coverages/{coverage_id:str}/posts"
    tags = ["posts"]
    guards = [require_role]
    security = [{"bearer": []}]
    opt = EDITORS

    @post(
        "/",
        operation_id="publishPost",
        responses=problems(401, 403, 413, 429, 404, 409, 413, 422),
        summary="Publish a post (honours Idempotency-Key)",
        status_code=201,
    )
    async def publish_post(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        data: JSONBody[PublishPost],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PostView]:
        post_id = new_post_id()
        return await run(
            request,
            pool,
            coverage_id=coverage_id,
            post_id=post_id,
            data=data,
            idempotency_key=idempotency_key,
            decide=lambda coverage, _: [Change(post_id, commands.decide_publish(coverage, coverage_id, data))],
            respond=_post_answer(201),
        )

    @patch(
        "/{post_id:str}",
        operation_id="editPost",
        responses=problems(401, 403, 413, 429, 404, 409, 412, 413, 422),
        summary="Edit a post in place (If-Match guards against lost updates)",
    )
    async def edit_post(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        post_id: FromPath[str],
        data: JSONBody[EditPost],
        if_match: IfMatchHeader = None,
    ) -> Response[PostView]:
        revision = expected_revision(if_match)
        if not is_post_id(post_id):
            raise post_not_found(coverage_id, post_id)
        return await run(
            request,
            pool,
            coverage_id=coverage_id,
            post_id=post_id,
            data=data,
            decide=lambda coverage, current: [
                Change(post_id, commands.decide_edit(coverage, current, coverage_id, post_id, data, revision))
            ],
            respond=_post_answer(200),
        )

    @post(
        "/{post_id:str}/retract",
        operation_id="retractPost",
        responses=problems(401, 403, 413, 429, 404, 409, 413, 422),
        summary="Retract a post: it leaves the timeline, history keeps it",
        status_code=200,
    )
    async def retract_post(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        post_id: FromPath[str],
        data: JSONBody[RetractPost],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[Tombstone]:
        return await _withdraw(
            request, pool, coverage_id, post_id, data, idempotency_key, commands.decide_retract, _tombstone_answer
        )

    @post(
        "/{post_id:str}/redact",
        operation_id="redactPost",
        responses=problems(401, 403, 413, 429, 404, 409, 413, 422),
        summary="Erase a post's content by law (admin): it leaves every event, read model, cache and export",
        opt=ADMINS,
        status_code=200,
    )
    async def redact_post(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        coverage_id: FromPath[str],
        post_id: FromPath[str],
        data: JSONBody[RedactPost],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[Tombstone]:
        return await _withdraw(
            request, pool, coverage_id, post_id, data, idempotency_key, commands.decide_redact, _redaction_answer
        )


@get(
    "/v1/coverages/{coverage_id:str}/posts/{post_id:str}",
    tags=["posts"],
    operation_id="getPost",
    responses=problems(404, 410),
    summary="One post's current state (410 once retracted)",
)
async def get_post(
    request: Request[Any, Any, State],
    pool: NamedDependency[asyncpg.Pool],
    settings: NamedDependency[Settings],
    coverage_id: FromPath[str],
    post_id: FromPath[str],
) -> Response[PostView]:
    async def render() -> tuple[int, object]:
        async with snapshot(pool) as conn:  # one snapshot: a retraction is never half seen
            coverage = (await find_coverage(conn, coverage_id)).state
            found = await find_post(conn, coverage_id, post_id)
        if found.retracted:
            stone = tombstone(found)
            withdrawn = "redacted" if found.redacted else "retracted"
            raise PostGone(f"post {post_id} was {withdrawn}: {stone.reason}", tombstone=stone)
        return coverage.version, post_view(found, coverage.pinned_post_id)

    return await coverage_read(
        request,
        coverage_id=coverage_id,
        render=render,
        cache_control=public_cache_control(settings),
        etag_of=view_etag,
    )


@get(
    "/v1/coverages/{coverage_id:str}/posts/{post_id:str}/history",
    tags=["posts"],
    operation_id="getPostHistory",
    responses=problems(401, 404),
    summary="Every event of a post with the post as it stood after it; more with an auditor or editor token",
)
async def get_post_history(
    request: Request[Any, Any, State],
    pool: NamedDependency[asyncpg.Pool],
    settings: NamedDependency[Settings],
    coverage_id: FromPath[str],
    post_id: FromPath[str],
) -> Response[PostHistory]:
    holder = await authenticate(request)
    full = holder is not None and may(holder, ("auditor", "editor"))

    async def render() -> tuple[int, object]:
        async with snapshot(pool) as conn:  # the post and its events at one moment
            coverage = (await find_coverage(conn, coverage_id)).state
            final = await find_post(conn, coverage_id, post_id)
            stream = await events.read_post_stream(conn, coverage_id, post_id)
        entries = [
            history_entry(event, state, post_id if pinned else None, full=full)
            for event, state, pinned in post_history(coverage, stream)
        ]
        if final.retracted and not full:
            entries = entries[-1:]
        history = PostHistory(
            coverage_id=coverage_id,
            post_id=post_id,
            tombstone=tombstone(final, full=full) if final.retracted else None,
            entries=entries,
        )
        return coverage.version, history

    if full:
        _, history = await render()
        return conditional_json(request, history, cache_control=PRIVATE)
    return await coverage_read(
        request, coverage_id=coverage_id, render=render, cache_control=public_cache_control(settings)
    )
