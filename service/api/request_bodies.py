"""Request bodies held to the types the OpenAPI document states, before litestar converts them.

litestar converts a handler's arguments, its JSON body among them, with msgspec in lax mode (`strict=False`), which
query strings and headers need (`?limit=5` is text) but a JSON body does not: lax mode takes `"key_event": 1` for
`true` and `"1"` for an integer, where the document says a boolean and an integer, and schemathesis rightly calls
that a schema-violating request accepted. litestar has no switch for it, so this hook decodes the raw body the
strict way (msgspec's default) into the handler's `data` type first, and refuses with litestar's own validation
error (a 400 problem naming the field) what the lax conversion would have let through. A body that decodes
strictly converts to the same value in lax mode, so the handler sees exactly what it saw before.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler

_WHERE = re.compile(r" - at `\$\.?(.*)`$")
_body_types: dict[HTTPRouteHandler, type[msgspec.Struct] | None] = {}


def _body_type(handler: HTTPRouteHandler) -> type[msgspec.Struct] | None:
    if handler not in _body_types:
        field = handler.parsed_fn_signature.parameters.get("data")
        annotation = field.annotation if field is not None else None
        is_struct = isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
        _body_types[handler] = annotation if is_struct else None
    return _body_types[handler]


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """litestar's `before_request`: refuse a JSON body that only lax conversion would accept."""
    handler = request.route_handler
    body_type = _body_type(handler) if isinstance(handler, HTTPRouteHandler) else None
    if body_type is None:
        return
    try:
        msgspec.json.decode(await request.body(), type=body_type)
    except msgspec.ValidationError as exc:
        message, where = str(exc), ""
        found = _WHERE.search(message)
        if found:
            message, where = message[: found.start()], found[1]
        raise ValidationException(
            f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": message, "key": where or "data", "source": "body"}],
        ) from exc
    except msgspec.DecodeError:
        return  # not JSON at all: litestar's own parsing refuses it the documented way
