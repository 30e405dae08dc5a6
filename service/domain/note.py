"""Signed notes (c2sp.org/signed-note) with Ed25519, and transparency-log checkpoints (c2sp.org/tlog-checkpoint).

Keys use the text forms of Go's golang.org/x/mod/sumdb/note, which the C2SP specification follows:
    verifier key  <name>+<key id, 8 hex>+base64(0x01 || 32-byte public key)
    signer key    PRIVATE+KEY+<name>+<key id>+base64(0x01 || 32-byte seed)
with key id = SHA-256(name || "\\n" || 0x01 || public key)[:4]. A signature line is
    — <name> base64(key id || Ed25519 signature of the note text)

Hand-written because no maintained Python package implements these formats; the Ed25519 itself is the
`cryptography` package's. `tests/unit/test_note.py` checks it against the examples of the C2SP specification and
the test vectors of Go's implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
_DASH = "\u2014 "


class NoteError(ValueError):
    """A key or a note that does not parse, or a signature that does not verify."""


def _key_id(name: str, public: bytes) -> int:
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4], "big")


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"a key name must be non-empty, without spaces or '+': {name!r}")


class Verifier(msgspec.Struct, frozen=True):
    name: str
    key_id: int
    public: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        try:
            name, key_hex, encoded = text.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            key_id = int(key_hex, 16)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"not a verifier key: {text!r}") from exc
        _check_name(name)
        if len(key_hex) != 8 or raw[:1] != ED25519 or len(raw) != 33 or _key_id(name, raw[1:]) != key_id:
            raise NoteError(f"not an Ed25519 verifier key, or its key id does not match: {text!r}")
        return cls(name, key_id, raw[1:])

    def text(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(ED25519 + self.public).decode()}"

    def verifies(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, _key_id(name, public), public)
        self._seed = seed

    @classmethod
    def generate(cls, name: str) -> Signer:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, seed)

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signer key (PRIVATE+KEY+<name>+<id>+<key>)")
        try:
            raw = base64.b64decode(parts[4], validate=True)
            key_id = int(parts[3], 16)
        except (ValueError, binascii.Error) as exc:
            raise NoteError("not a signer key: bad encoding") from exc
        if raw[:1] != ED25519 or len(raw) != 33:
            raise NoteError("not an Ed25519 signer key")
        signer = cls(parts[2], raw[1:])
        if signer.verifier.key_id != key_id:
            raise NoteError("the signer key's id does not match its key")
        return signer

    def text(self) -> str:
        encoded = base64.b64encode(ED25519 + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id:08x}+{encoded}"

    def sign(self, text: str) -> str:
        """The signed note of `text` (which must end in a newline): the text, a blank line, our signature line."""
        _check_text(text)
        signature = struct.pack(">I", self.verifier.key_id) + self._key.sign(text.encode())
        return f"{text}\n{_DASH}{self.name} {base64.b64encode(signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(c < " " and c != "\n" for c in text):
        raise NoteError("a note's text ends in a newline and has no other control characters")


def open_note(note: str, verifier: Verifier) -> str:
    """The text of a signed note whose signature by `verifier` checks (other signatures are ignored)."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before signatures, or no final newline")
    text += "\n"
    _check_text(text)
    for line in signatures.splitlines():
        if not line.startswith(_DASH):
            raise NoteError(f"not a signature line: {line!r}")
        name, _, encoded = line[len(_DASH) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"a signature is not base64: {line!r}") from exc
        if name != verifier.name or len(raw) < 4 or int.from_bytes(raw[:4], "big") != verifier.key_id:
            continue
        if verifier.verifies(text.encode(), raw[4:]):
            return text
        raise NoteError(f"invalid signature for key {verifier.name}+{verifier.key_id:08x}")
    raise NoteError(f"the note is not signed by {verifier.name}+{verifier.key_id:08x}")


class Checkpoint(msgspec.Struct, frozen=True):
    """A log's tree head (c2sp.org/tlog-checkpoint): origin, size, RFC 6962 root."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or not lines[0] or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash, one a line")
        origin, size, root = lines[:3]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"a checkpoint's size is a decimal without leading zeros, not {size!r}")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError("a checkpoint's root hash is base64") from exc
        if len(digest) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes")
        return cls(origin, int(size), digest)
