"""RFC 6962 Merkle trees (hashing, inclusion and consistency proofs, and their verification, as RFC 9162 §2.1
writes them): one tree per coverage, whose leaves are its events' chain hashes in version order.

Hand-written on purpose: the Python packages that verify such proofs (sigstore's, for Rekor) do not build them,
and the ones that build trees use their own hashing. It is small, and `tests/unit/test_merkle.py` checks it
against the published vectors of transparency-dev/merkle (the Go library Certificate Transparency and sumdb
use): every root, every proof, and every malformed proof they list.
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class ProofError(ValueError):
    """A proof asked for sizes the tree cannot prove (beyond it, or backwards)."""


class Tree:
    """The leaf hashes of one log and the hash of every complete subtree, kept as leaves arrive, so that a root
    or a proof costs O(log n) hashes whatever the size."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        """_levels[k], 32 bytes a node: the hash of the 2**k leaves from i * 2**k at [32 i, 32 i + 32) (flat
        bytes rather than lists of hashes: 64 bytes per leaf in all, not about 160)."""

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def _node(self, level: int, index: int) -> bytes:
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def append(self, leaf: bytes) -> None:
        """Add a leaf by its hash (`leaf_hash` of its data)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        self._levels[0] += leaf
        level, index = 0, self.size - 1
        while index % 2 == 1:
            if len(self._levels) == level + 1:
                self._levels.append(bytearray())
            self._levels[level + 1] += node_hash(self._node(level, index - 1), self._node(level, index))
            level, index = level + 1, index // 2

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"the tree has {self.size} leaves, not {size}")
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 §2.1.1."""
        if not 0 <= index < size <= self.size:
            raise ProofError(f"no leaf {index} in a tree of {size} (this tree has {self.size} leaves)")
        return self._path(index, 0, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """PROOF(old, D[0:new]) of RFC 6962 §2.1.2."""
        if not 0 < old <= new <= self.size:
            raise ProofError(f"no consistency proof from {old} to {new} leaves (this tree has {self.size})")
        return [] if old == new else self._subproof(old, 0, new, True)

    def _subtree(self, start: int, end: int) -> bytes:
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:  # a complete subtree: remembered
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._subtree(start + k, end)]
        return [*self._path(m - k, start + k, end), self._subtree(start, start + k)]

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self._subtree(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self._subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._subtree(start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` with `root`."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: whether `proof` shows the tree of `old` leaves with `old_root` is a prefix of the tree of
    `new` leaves with `new_root`. From an empty tree nothing is proved (any tree extends it), so that is False."""
    if not 0 < old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if not proof or any(len(h) != HASH_SIZE for h in proof):
        return False
    path = [old_root, *proof] if old & (old - 1) == 0 else list(proof)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0
