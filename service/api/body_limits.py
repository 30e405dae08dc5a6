"""Limits on a JSON request body's shape, checked on the raw bytes before anything parses it.

A body well under the size limit can still cost a parser dearly (50,000 nested arrays overflow the decoder's
recursion; a hundred thousand keys build a huge dict before validation refuses them). The checks below run at C
speed with bytes methods and regular expressions, and the largest legitimate bodies are far inside them:
a post nests four levels deep and has a few thousand keys at most; the longest text field is 20,000 characters.
"""

from __future__ import annotations

import re

MAX_DEPTH = 16
MAX_KEYS = 10_000
MAX_STRING_BYTES = 131_072
"""Of one JSON string as sent, escapes included (20,000 characters can take up to 120,000 bytes escaped)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEY = re.compile(rb'""\s*:')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class ShapeRefused(Exception):
    """The body's shape is beyond a limit: `detail` names it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def check_shape(body: bytes) -> None:
    """Raise ShapeRefused when the body nests too deep, has too many keys or too long a string."""
    if max(map(len, _STRING.findall(body)), default=0) > MAX_STRING_BYTES:
        raise ShapeRefused(f"a JSON string is longer than {MAX_STRING_BYTES:,} bytes")
    hollow = _STRING.sub(b'""', body)
    if len(_KEY.findall(hollow)) > MAX_KEYS:
        raise ShapeRefused(f"the JSON body has more than {MAX_KEYS:,} keys")
    brackets = hollow.translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets:  # unbalanced but shallow: the JSON parser will say what is wrong
            return
        brackets = inner
    if brackets:
        raise ShapeRefused(f"the JSON body nests deeper than {MAX_DEPTH} levels")
