"""Post body blocks: a closed set of tagged Structs; an unknown `type` fails to decode."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from service.domain.errors import MalformedUrl
from service.domain.markup import clean_text

Text = Annotated[str, Meta(min_length=1, max_length=20_000)]
ShortText = Annotated[str, Meta(min_length=1, max_length=1_000)]
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
r"""Exactly what Python's `\s` matches in text, spelled out: the pattern is also read as an ECMA-262 regex (the
OpenAPI document), whose `\s` is another set (it lacks U+0085 and U+001C-U+001F, and has U+FEFF)."""
WebUrl = Annotated[
    str,
    Meta(
        pattern=f"^[hH][tT][tT][pP][sS]?://[^{_SPACE}/$.?#][^{_SPACE}]*$", max_length=2_048, description="http(s) URL"
    ),
]
"""What a stored URL may be (events decode with it, so it never narrows)."""
URL_PATTERN = f"^[hH][tT][tT][pP][sS]?://[^{_SPACE}\\x00-\\x1f\\x7f/$.?#][^{_SPACE}\\x00-\\x1f\\x7f]*$"
"""What a URL sent in a post may be: no control characters either. Checked on every write (`clean_block`, whole
string) and stated in the OpenAPI document (api/contract.py); WebUrl, which older events were stored under, stays
as it was."""
EmbedProvider = Literal["twitter", "youtube", "instagram", "facebook", "tiktok", "other"]


class _Block(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="type"):
    pass


class Paragraph(_Block, frozen=True, tag="paragraph"):
    text: Text


class Heading(_Block, frozen=True, tag="heading"):
    text: ShortText


class Quote(_Block, frozen=True, tag="quote"):
    text: Text
    attribution: ShortText | None = None


class ListBlock(_Block, frozen=True, tag="list"):
    items: Annotated[list[Text], Meta(min_length=1, max_length=100)]


class Image(_Block, frozen=True, tag="image"):
    url: WebUrl
    alt: ShortText
    caption: ShortText | None = None
    credit: ShortText | None = None


class Embed(_Block, frozen=True, tag="embed"):
    provider: EmbedProvider
    url: WebUrl
    fallback_text: ShortText | None = None


class Link(_Block, frozen=True, tag="link"):
    url: WebUrl
    text: ShortText


Block = Paragraph | Heading | Quote | ListBlock | Image | Embed | Link
Body = Annotated[list[Block], Meta(min_length=1, max_length=200)]


NOT_TEXT = frozenset({"url", "provider"})
_URL = re.compile(URL_PATTERN)


def clean_block(block: Block, where: str) -> Block:
    """The block with every free-text field sanitised; URLs are already constrained to http(s)."""
    changes: dict[str, str | list[str]] = {}
    for name in block.__struct_fields__:
        value = getattr(block, name)
        if name == "url" and not _URL.fullmatch(value):
            # Python's `$` would let a trailing newline through; fullmatch does not
            raise MalformedUrl(f"{where}.url must be an http(s) URL without control characters", field=f"{where}.url")
        if name in NOT_TEXT or value is None:
            continue
        if isinstance(value, list):
            changes[name] = [clean_text(item, f"{where}.{name}[{i}]") for i, item in enumerate(value)]
        else:
            changes[name] = clean_text(value, f"{where}.{name}")
    return msgspec.structs.replace(block, **changes)


def clean_body(body: list[Block]) -> list[Block]:
    return [clean_block(block, f"body[{i}]") for i, block in enumerate(body)]
