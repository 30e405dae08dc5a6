"""What the OpenAPI document states beyond what litestar derives from the handlers, so that it says exactly what
the server enforces: request objects that refuse unknown fields are closed (`additionalProperties: false`), and
the strings in their lists carry their length limits.

litestar builds component schemas from the msgspec Structs but carries neither `forbid_unknown_fields` nor the
`Meta` of a list's items over (`editors: list[Name]` came out as a list of any strings); this walks the
components once, when the app is made, closes those whose Struct forbids unknown fields, and gives list items the
limits msgspec's own schema of the Struct states.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPI, Schema
from msgspec import Struct

from service.domain import blocks, commands, events


def _closed_structs() -> dict[str, type[Struct]]:
    found: dict[str, type[Struct]] = {}
    for module in (commands, blocks, events):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Struct) and value.__struct_config__.forbid_unknown_fields:
                found[value.__name__] = value
    return found


def close_request_objects(document: OpenAPI) -> None:
    closed = _closed_structs()
    for name, component in (document.components.schemas or {}).items() if document.components else ():
        if name in closed:
            component.additional_properties = False
            _limit_list_items(component, closed[name])


def _limit_list_items(component: Schema, struct: type[Struct]) -> None:
    """Give each list of strings in `component` the item limits msgspec states for `struct`."""
    stated: dict[str, Any] = msgspec.json.schema_components([struct])[1][struct.__name__].get("properties", {})
    for name, schema in (component.properties or {}).items():
        item = _string_item(stated.get(name, {}))
        if item is None or not isinstance(schema, Schema):
            continue
        for array in (schema, *(s for s in schema.one_of or () if isinstance(s, Schema))):
            if isinstance(array.items, Schema) and array.items.type is not None:
                array.items.min_length = item.get("minLength")
                array.items.max_length = item.get("maxLength")


def _string_item(stated: dict[str, Any]) -> dict[str, Any] | None:
    """The item schema of a list of strings in msgspec's schema of a field (a list, or a list or null), or None."""
    for option in (stated, *stated.get("anyOf", ())):
        items = option.get("items") if option.get("type") == "array" else None
        if isinstance(items, dict) and items.get("type") == "string":
            return items
    return None


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
