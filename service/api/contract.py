"""What the OpenAPI document states beyond what litestar derives from the handlers, so that it says exactly what
the server enforces: request objects that refuse unknown fields are closed (`additionalProperties: false`).

litestar builds component schemas from the msgspec Structs but does not carry `forbid_unknown_fields` over; this
walks the components once, when the app is made, and closes those whose Struct forbids unknown fields.
"""

from __future__ import annotations

import re

from litestar.openapi.spec import OpenAPI
from msgspec import Struct

from service.domain import blocks, commands, events


def _closed_structs() -> set[str]:
    found: set[str] = set()
    for module in (commands, blocks, events):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Struct) and value.__struct_config__.forbid_unknown_fields:
                found.add(value.__name__)
    return found


def close_request_objects(document: OpenAPI) -> None:
    closed = _closed_structs()
    for name, component in (document.components.schemas or {}).items() if document.components else ():
        if name in closed:
            component.additional_properties = False


class Routes:
    """The methods each documented path answers, for `Allow` (OPTIONS and 405): what the document lists, plus
    HEAD wherever GET is (api/edge.py answers it) and OPTIONS itself. Hand-written because litestar's OPTIONS
    names only the methods of one handler when two controllers share a path."""

    def __init__(self, document: OpenAPI) -> None:
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template, item in (document.paths or {}).items():
            methods = {m.upper() for m in ("get", "put", "post", "delete", "patch") if getattr(item, m, None)}
            if "GET" in methods:
                methods.add("HEAD")
            methods.add("OPTIONS")
            literal = re.split(r"\{[^/}]+\}", template)
            pattern = re.compile("^" + "[^/]+".join(re.escape(part) for part in literal) + "$")
            order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            self._routes.append((pattern, ", ".join(m for m in order if m in methods)))

    def allow(self, path: str) -> str | None:
        for pattern, allowed in self._routes:
            if pattern.match(path):
                return allowed
        return None
