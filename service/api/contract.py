"""What the OpenAPI document states beyond what litestar derives from the handlers, so that it says exactly what
the server enforces: request objects that refuse unknown fields are closed (`additionalProperties: false`), the
strings in their lists carry their length limits, a `timezone` is one of the names accepted, a post takes `byline`
or `contributors` but not both, a URL carries no control characters, and an optional query or header parameter is
documented without the `null` its Python default stands for (absent is the only null a query or header can say; a
generator that took the `null` literally sends an empty value or the text `null`, which the server refuses), and a
string query
parameter is at least one character long (the edge refuses empty values). It also adds the OpenAPI links that let
a generic client (or schemathesis's stateful phase) chain the newsroom's work: open a coverage, publish, edit,
pin, retract, and follow a timeline's cursor to its changes; and the NDJSON form of the audit feed beside its JSON
page (litestar documents one media type an answer).

litestar builds component schemas from the msgspec Structs but carries neither `forbid_unknown_fields` nor the
`Meta` of a list's items over (`editors: list[Name]` came out as a list of any strings); this walks the
components once, when the app is made, closes those whose Struct forbids unknown fields, and gives list items the
limits msgspec's own schema of the Struct states.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    Link,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Reference,
    Schema,
)
from msgspec import Struct

from service.domain import blocks, commands, events


def _closed_structs() -> dict[str, type[Struct]]:
    found: dict[str, type[Struct]] = {}
    for module in (commands, blocks, events):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Struct) and value.__struct_config__.forbid_unknown_fields:
                found[value.__name__] = value
    return found


def state_exactly(document: OpenAPI) -> None:
    """Complete the document litestar generated (once, when the app is made)."""
    closed = _closed_structs()
    for name, component in (document.components.schemas or {}).items() if document.components else ():
        if name in closed:
            component.additional_properties = False
            _limit_list_items(component, closed[name])
            _list_time_zones(component)
            _one_of_byline_and_contributors(component)
            _urls_without_controls(component)
    for item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            for parameter in operation.parameters or ():
                if isinstance(parameter, Parameter) and parameter.param_in != ParamType.PATH:
                    _state_parameter(parameter)
            if operation.responses is not None:
                operation.responses["431"] = OpenAPIResponse(description=HEAD_TOO_LARGE)
            streamed = STREAMED.get(operation.operation_id or "")
            if streamed is not None:
                _add_streamed_form(operation.responses or {}, *streamed)
            for status, links in LINKS.get(operation.operation_id or "", {}).items():
                answer = (operation.responses or {})[status]
                assert not isinstance(answer, Reference)
                answer.links = dict(links)


HEAD_TOO_LARGE = (
    "The request's head (request line and headers) does not fit the server's HTTP/1 buffer "
    "(`LIVELINE_HTTP1_BUFFER_BYTES`, 8 KiB by default): refused by the HTTP server before the service reads it, "
    "with no body. Any operation can answer it."
)
"""granian answers it itself; the limit keeps an open stream's memory low (README, *Why polling is cheap*)."""


STREAMED = {"readEventFeed": ("application/x-ndjson", "FeedEntry")}
"""Operations that also answer as a stream of JSON lines (asked for with `Accept`): the media type and the component
each line is. litestar documents one media type per status."""


def _add_streamed_form(responses: dict[str, OpenAPIResponse | Reference], media_type: str, component: str) -> None:
    ok = responses["200"]
    assert isinstance(ok, OpenAPIResponse) and ok.content is not None
    ok.content[media_type] = OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{component}"))


_IN_PATH = "$request.path.coverage_id"
_NEW_POST = {"path.coverage_id": _IN_PATH, "path.post_id": "$response.body#/id"}
_THIS_POST = {"path.coverage_id": _IN_PATH, "path.post_id": "$request.path.post_id"}


def _post_links(post: dict[str, str], etag: bool) -> dict[str, Link]:
    """What can follow an answer carrying a post (`post` names it); `etag`: the answer's ETag guards an edit."""
    guarded = {**post, "header.If-Match": "$response.header.ETag"} if etag else post
    return {
        "GetPost": Link(operation_id="getPost", parameters=post),
        "GetPostHistory": Link(operation_id="getPostHistory", parameters=post),
        "EditPost": Link(operation_id="editPost", parameters=guarded),
        "PinPost": Link(
            operation_id="pinPost",
            parameters={"path.coverage_id": _IN_PATH},
            request_body={"post_id": post["path.post_id"]},
        ),
        "RetractPost": Link(operation_id="retractPost", parameters=post),
        "RedactPost": Link(operation_id="redactPost", parameters=post),
    }


def _coverage_links(coverage_id: str, *operations: str) -> dict[str, Link]:
    return {
        op[0].upper() + op[1:]: Link(operation_id=op, parameters={"path.coverage_id": coverage_id}) for op in operations
    }


_CHANGES: dict[str, Any] = {"path.coverage_id": _IN_PATH, "query.since": "$response.body#/cursor", "query.wait": 0}
"""What changed since this answer, asked at once (a client that long-polls passes its own `wait`)."""
LINKS: dict[str, dict[str, dict[str, Link]]] = {
    "openCoverage": {
        "201": _coverage_links(
            "$response.body#/id", "getCoverage", "updateCoverage", "publishPost", "getTimeline", "endCoverage"
        )
    },
    "publishPost": {"201": _post_links(_NEW_POST, etag=True)},
    "editPost": {"200": _post_links(_NEW_POST, etag=True)},
    "pinPost": {"200": _coverage_links(_IN_PATH, "unpinPost", "getTimeline")},
    "endCoverage": {"200": _coverage_links(_IN_PATH, "reopenCoverage", "getTimeline")},
    "retractPost": {"200": {name: link for name, link in _post_links(_THIS_POST, etag=False).items() if "Get" in name}},
    "getTimeline": {"200": {"GetChanges": Link(operation_id="getChanges", parameters=_CHANGES)}},
    "getChanges": {"200": {"GetChanges": Link(operation_id="getChanges", parameters=_CHANGES)}},
}
"""The links each operation's answers carry, by operation id and status: the newsroom's chain (open a coverage,
publish, edit under If-Match, pin, retract) and a reader's (a timeline's cursor to its changes, and on)."""


def _state_parameter(parameter: Parameter) -> None:
    if not parameter.required:
        _drop_null(parameter.schema)
    schema = parameter.schema
    if not isinstance(schema, Schema) or parameter.param_in != ParamType.QUERY or schema.type != OpenAPIType.STRING:
        return
    if schema.min_length is None:
        schema.min_length = 1  # the edge refuses an empty value (api/edge.py: leave it out instead)


def _drop_null(schema: Schema | Reference | None) -> None:
    """`oneOf: [X, null]` becomes X, keeping the limits stated beside the `oneOf`."""
    if not isinstance(schema, Schema) or not schema.one_of:
        return
    kept = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
    if len(kept) != 1 or len(kept) == len(schema.one_of) or not isinstance(kept[0], Schema):
        return
    schema.one_of = None
    for field in fields(kept[0]):
        value = getattr(kept[0], field.name)
        if value is not None and getattr(schema, field.name) is None:
            setattr(schema, field.name, value)


def _list_time_zones(component: Schema) -> None:
    """A request's `timezone` is one of the names the server accepts (commands.time_zones), listed as a pattern of
    alternatives rather than an `enum`: client generators turn an enum into named constants, and some of these
    names differ only in punctuation (`Etc/GMT+0`, `Etc/GMT-0`, `Etc/GMT0`), which openapi-python-client refuses."""
    found = (component.properties or {}).get("timezone")
    if isinstance(found, Schema):
        names = (name.replace("+", "\\+") for name in sorted(commands.time_zones()))  # `+` is their one special
        found.pattern = "^(?:" + "|".join(names) + ")$"


def _urls_without_controls(component: Schema) -> None:
    """A block's `url` is what a write accepts (blocks.URL_PATTERN), narrower than what stored events hold."""
    found = (component.properties or {}).get("url")
    if isinstance(found, Schema) and found.pattern is not None:
        found.pattern = blocks.URL_PATTERN


def _one_of_byline_and_contributors(component: Schema) -> None:
    """A post takes `byline` (shorthand for one contributor) or `contributors`, never both keys."""
    if {"byline", "contributors"} <= set(component.properties or {}):
        component.schema_not = Schema(required=["byline", "contributors"])


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
