"""The per-coverage SHA-256 hash chain over a canonical encoding of each event (SPEC §2, §4a)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.domain import merkle

GENESIS = "0" * 64

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_event(
    *,
    coverage_id: str,
    version: int,
    post_id: str | None,
    type_: str,
    schema_version: int,
    data: Any,
    metadata: Any,
    recorded_at: datetime,
    commitment: str | None = None,
) -> bytes:
    """The bytes an event's hash covers: every stored field but its position and hashes, keys sorted. With a
    `commitment` (events since migration 0006) it stands in for the data, so the data can be erased later."""
    fields = {
        "coverage_id": coverage_id,
        "version": version,
        "post_id": post_id,
        "type": type_,
        "schema_version": schema_version,
        "metadata": metadata,
        "recorded_at": canonical_time(recorded_at),
    }
    if commitment is None:
        fields["data"] = data
    else:
        fields["commitment"] = commitment
    return _canonical.encode(fields)


def new_salt() -> str:
    return secrets.token_hex(16)


def commit(salt: str, data: Any) -> str:
    """A salted commitment to an event's data: without the salt, it confirms no guess of the data."""
    return hashlib.sha256(bytes.fromhex(salt) + _canonical.encode(data)).hexdigest()


def leaf(hash_: str) -> bytes:
    """An event's leaf in its coverage's Merkle tree (domain.merkle): the RFC 6962 leaf hash of its chain hash,
    which covers everything the event says."""
    return merkle.leaf_hash(bytes.fromhex(hash_))


def link(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An event exactly as the log stores it (payload not upcast): what auditors read, export writes and
    import reads back. `recorded_at` is the canonical time string the hash covers. `salt` and `commitment` are
    absent from events written before migration 0006 (so their export lines are unchanged), and `salt` from
    events whose content was erased."""

    position: int
    coverage_id: str
    version: int
    post_id: str | None
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str
    prev_hash: str
    hash: str
    salt: str | None = None
    commitment: str | None = None

    def expected_hash(self) -> str:
        return link(
            self.prev_hash,
            canonical_event(
                coverage_id=self.coverage_id,
                version=self.version,
                post_id=self.post_id,
                type_=self.type,
                schema_version=self.schema_version,
                data=self.data,
                metadata=self.metadata,
                recorded_at=datetime.fromisoformat(self.recorded_at),
                commitment=self.commitment,
            ),
        )

    def content_matches(self) -> bool:
        """Whether the data is what the commitment was made to (vacuously, where there is none, or no salt)."""
        return self.commitment is None or self.salt is None or commit(self.salt, self.data) == self.commitment


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True):
    coverage_id: str
    version: int
    position: int
    reason: str


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    coverage_id: str
    events: int
    version: int
    head: str


class ChainChecker:
    """Follows every coverage's chain event by event (events of one coverage must come in version order).

    Erased content (a redaction's work) is accepted where a later `post.redacted` of the same post says so: an
    erased event with a commitment still verifies through it; one from before commitments (0006) keeps the hash
    it had, which is trusted as the Merkle trees trust it. `finish` reports erasures no redaction covers.
    """

    def __init__(self) -> None:
        self._heads: dict[str, ChainHead] = {}
        self._erased: dict[tuple[str, str | None, int], LoggedEvent] = {}
        """(coverage, post, redaction version) -> the first erased event waiting for that redaction"""

    def check(self, event: LoggedEvent) -> ChainBreak | None:
        head = self._heads.get(event.coverage_id)
        expected_version = 1 if head is None else head.version + 1
        expected_prev = GENESIS if head is None else head.head

        def broken(reason: str) -> ChainBreak:
            return ChainBreak(
                coverage_id=event.coverage_id, version=event.version, position=event.position, reason=reason
            )

        if event.version != expected_version:
            return broken(
                f"version {event.version} where {expected_version} was expected: an event is missing or moved"
            )
        if event.prev_hash != expected_prev:
            return broken("prev_hash does not match the hash of the event before")
        erased = event.data.get("erased")
        if isinstance(erased, dict):
            self._erased.setdefault((event.coverage_id, event.post_id, erased.get("by", 0)), event)
        elif event.type == "post.redacted":
            self._erased.pop((event.coverage_id, event.post_id, event.version), None)
        trusted = isinstance(erased, dict) and event.commitment is None  # erased before commitments existed
        if not trusted and event.hash != event.expected_hash():
            return broken("hash does not match the event's content: the event was altered")
        if not event.content_matches():
            return broken("the data does not match its salted commitment: the event was altered")
        self._heads[event.coverage_id] = ChainHead(
            coverage_id=event.coverage_id,
            events=(head.events if head else 0) + 1,
            version=event.version,
            head=event.hash,
        )
        return None

    def finish(self) -> ChainBreak | None:
        """After the last event: content erased with no redaction to show for it."""
        for event in sorted(self._erased.values(), key=lambda e: (e.coverage_id, e.version)):
            return ChainBreak(
                coverage_id=event.coverage_id,
                version=event.version,
                position=event.position,
                reason="the event's content was removed, but no post.redacted event of its post says so",
            )
        return None

    def heads(self) -> list[ChainHead]:
        return sorted(self._heads.values(), key=lambda h: h.coverage_id)
