"""Post identifiers: UUIDv7, sortable by creation time.

Hand-written because the standard library gains `uuid.uuid7` only in Python 3.14; RFC 9562 §5.7.
"""

from __future__ import annotations

import os
import re
import time
import uuid

POST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_post_id() -> str:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def is_post_id(text: str) -> bool:
    return POST_ID.fullmatch(text) is not None


COVERAGE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
"""Coverage ids are slugs chosen by the newsroom (SPEC §2)."""


def is_coverage_id(text: str) -> bool:
    return COVERAGE_ID.fullmatch(text) is not None
