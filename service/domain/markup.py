"""Inline HTML allowed in post text (SPEC §2), sanitised with nh3 before anything is stored."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3

from service.domain.errors import InvalidField, UnsafeMarkup

ALLOWED_TAGS = frozenset({"a", "strong", "b", "em", "i", "br"})
ALLOWED_ATTRIBUTES = {"a": {"href"}}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
ACTIVE_ELEMENTS = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "object",
        "embed",
        "svg",
        "math",
        "template",
        "form",
        "base",
        "meta",
    }
)


class _ActiveContentFinder(HTMLParser):
    """Finds markup that could run in a reader's browser.

    nh3 removes it silently; this scan exists only so the CMS is told (422) that it sent active
    content instead of having it vanish. Sanitising itself is left to nh3.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found:
            return
        if tag in ACTIVE_ELEMENTS:
            self.found = f"<{tag}> element"
            return
        for name, value in attrs:
            if name.startswith("on"):
                self.found = f"event-handler attribute {name!r}"
                return
            if name in {"href", "src", "action", "formaction", "xlink:href"} and value is not None:
                scheme = urlsplit(value.strip()).scheme.lower()
                if scheme and scheme not in LINK_SCHEMES:
                    self.found = f"{scheme}: URL"
                    return


def clean_text(text: str, field: str) -> str:
    """Sanitised inline HTML for `text`; refuses active content so the sender learns of it."""
    finder = _ActiveContentFinder()
    try:
        finder.feed(text)
        finder.close()
    except AssertionError as exc:  # html.parser asserts on some malformed declarations ("<![x[")
        raise UnsafeMarkup(f"{field} carries malformed markup", field=field) from exc
    if finder.found:
        raise UnsafeMarkup(f"{field} carries active content ({finder.found}), which is not allowed", field=field)
    cleaned = nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(LINK_SCHEMES),
        link_rel="noopener noreferrer",
    )
    if not nh3.clean(cleaned, tags=set()).strip():  # allowed tags with nothing in them (`<b></b>`) say nothing either
        raise InvalidField(f"{field} is empty once markup is removed", field=field)
    return cleaned
