"""Bearer tokens and roles: one guard, set once on each controller that needs a token, driven by `opt["roles"]`."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from service.store.pool import Statements
from service.store.tokens import Role, TokenHolder, find_holder

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="liveline"'}
EDITORS: dict[str, Any] = {"roles": ("editor",)}
"""`opt` for routes that change the record."""
ADMINS: dict[str, Any] = {"roles": ()}
"""Admins only (an admin passes every role check)."""


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> TokenHolder | None:
    """The token's holder, None when no token was sent; a malformed, unknown or revoked token is a 401."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("Authorization must be `Bearer <token>`", headers=CHALLENGE)
    # One statement, on a connection lent for it alone (store/pool.py's Statements: no reset query per write).
    statements: Statements = connection.app.state.statements
    holder = await find_holder(statements, token)
    if holder is None:
        raise NotAuthorizedException("unknown or revoked token", headers=CHALLENGE)
    return holder


def may(holder: TokenHolder, roles: tuple[Role, ...]) -> bool:
    return holder.role == "admin" or holder.role in roles


async def require_role(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    roles: tuple[Role, ...] = handler.opt["roles"]
    holder = await authenticate(connection)
    if holder is None:
        raise NotAuthorizedException("this route needs a bearer token", headers=CHALLENGE)
    if not may(holder, roles):
        raise PermissionDeniedException(f"role {holder.role!r} may not do this; needs one of {list(roles)}")
    if connection.scope.get("method") not in ("GET", "HEAD"):
        connection.app.state.quotas.take(holder.name)
    connection.state.holder = holder
