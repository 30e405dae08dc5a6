"""The transparency log of each coverage, for anyone: signed checkpoints, inclusion and consistency proofs, and the
key that verifies them (c2sp.org/tlog-checkpoint over the RFC 6962 tree of the coverage's events; see README,
"Evidence outside the database").

A process keeps each coverage's tree in memory (64 bytes an event), grown from the log as versions appear; the
leaves it once read are never re-read, so a log rewritten under a running process does not change what it proves.
Checkpoints are signed on demand: Ed25519 is deterministic, so a size always gets the same bytes.
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, QueryParameter
from msgspec import Struct

from service.api.caching import public_cache_control
from service.api.coverages import find_coverage
from service.api.problems import problems
from service.config import Settings
from service.domain.chain import leaf
from service.domain.errors import BeyondTheLog, LogInconsistent
from service.domain.merkle import Tree
from service.domain.note import Checkpoint, Signer
from service.store import events

TEXT = "text/plain; charset=utf-8"
_GROW_SLICE = 5_000
"""Leaves hashed between two yields to the event loop while a long coverage's tree is first built."""


class Logs:
    """Every coverage's Merkle tree in this process (the `keep` most recently used), and its signed checkpoints."""

    def __init__(self, signer: Signer, keep: int = 256) -> None:
        self.signer = signer
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._keep = keep

    def origin(self, coverage_id: str) -> str:
        return f"{self.signer.name}/{coverage_id}"

    async def tree(self, pool: asyncpg.Pool, coverage_id: str, size: int) -> Tree:
        """The coverage's tree with at least `size` leaves, read from the log as needed."""
        tree = self._trees.get(coverage_id)
        if tree is not None and tree.size >= size:
            self._trees.move_to_end(coverage_id)
            return tree
        async with self._locks.setdefault(coverage_id, asyncio.Lock()):
            tree = self._trees.get(coverage_id) or Tree()
            if tree.size < size:
                async with pool.acquire() as conn:
                    hashes = await events.chain_hashes(conn, coverage_id, tree.size)
                for n, (version, hash_) in enumerate(hashes):
                    if version != tree.size + 1:
                        break  # a gap: never build past it
                    tree.append(leaf(hash_))
                    if n % _GROW_SLICE == _GROW_SLICE - 1:
                        await asyncio.sleep(0)
            self._trees[coverage_id] = tree
            self._trees.move_to_end(coverage_id)
            while len(self._trees) > self._keep:
                self._trees.popitem(last=False)
        if tree.size < size:
            raise LogInconsistent(
                f"the log of {coverage_id} holds {tree.size} whole events, but its version is {size}; run verify"
            )
        return tree

    def checkpoint(self, coverage_id: str, tree: Tree, size: int) -> str:
        """The signed checkpoint (a c2sp.org/signed-note) of the coverage's log at `size` events."""
        return self.signer.sign(Checkpoint(self.origin(coverage_id), size, tree.root(size)).text())


class InclusionProof(Struct, frozen=True, kw_only=True):
    version: int
    """The event proved: its version, so leaf index version - 1."""
    event_hash: str
    """The event's chain hash (hex), as the feed and export show it; the leaf is SHA-256(0x00 || its 32 bytes)."""
    tree_size: int
    hashes: list[str]
    """The RFC 6962 audit path, base64, leaf to root."""
    checkpoint: str
    """The signed checkpoint of `tree_size` that the path leads to."""


class ConsistencyProof(Struct, frozen=True, kw_only=True):
    old_size: int
    new_size: int
    hashes: list[str]
    """The RFC 6962 consistency proof, base64."""
    checkpoint: str
    """The signed checkpoint of `new_size`."""


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


class TransparencyController(Controller):
    path = "/v1"
    tags = ["transparency"]

    @get(
        "/log-key",
        operation_id="readLogKey",
        media_type=TEXT,
        responses=problems(),
        summary="The verifier key of every checkpoint (Go sumdb/note form: <name>+<key id>+<base64 Ed25519 key>)",
    )
    async def key(self, request: Request[Any, Any, State], settings: NamedDependency[Settings]) -> Response[str]:
        logs: Logs = request.app.state.logs
        return Response(logs.signer.verifier.text() + "\n", media_type=TEXT, headers=_cached(settings))

    @get(
        "/coverages/{coverage_id:str}/checkpoint",
        operation_id="readCheckpoint",
        media_type=TEXT,
        responses=problems(404, 409),
        summary="The signed checkpoint (c2sp.org/tlog-checkpoint) of the coverage's log, now or at a size",
    )
    async def checkpoint(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        size: Annotated[int | None, QueryParameter(ge=1, le=2**53, description="events; default: all")] = None,
    ) -> Response[str]:
        logs: Logs = request.app.state.logs
        size = await _tree_size(request, pool, coverage_id, "size", size)
        tree = await logs.tree(pool, coverage_id, size)
        return Response(logs.checkpoint(coverage_id, tree, size), media_type=TEXT, headers=_cached(settings))

    @get(
        "/coverages/{coverage_id:str}/proofs/inclusion",
        operation_id="proveInclusion",
        responses=problems(404, 409),
        summary="Proof that the event at a version is in the coverage's log of a size (RFC 6962 audit path)",
    )
    async def inclusion(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        version: Annotated[int, QueryParameter(ge=1, le=2**53, description="the event's version")],
        size: Annotated[int | None, QueryParameter(ge=1, le=2**53, description="tree size; default: all")] = None,
    ) -> Response[InclusionProof]:
        logs: Logs = request.app.state.logs
        size = await _tree_size(request, pool, coverage_id, "size", size)
        version = _within(version, size, "version")
        tree = await logs.tree(pool, coverage_id, size)
        async with pool.acquire() as conn:
            event_hash = await events.chain_hash(conn, coverage_id, version) or ""
        proof = InclusionProof(
            version=version,
            event_hash=event_hash,
            tree_size=size,
            hashes=_b64(tree.inclusion_proof(version - 1, size)),
            checkpoint=logs.checkpoint(coverage_id, tree, size),
        )
        return Response(proof, headers=_cached(settings))

    @get(
        "/coverages/{coverage_id:str}/proofs/consistency",
        operation_id="proveConsistency",
        responses=problems(404, 409),
        summary="Proof that the coverage's log of one size is a prefix of the log of a larger size (RFC 6962)",
    )
    async def consistency(
        self,
        request: Request[Any, Any, State],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
        coverage_id: FromPath[str],
        old: Annotated[int, QueryParameter(ge=1, le=2**53, description="the smaller tree size")],
        new: Annotated[int | None, QueryParameter(ge=1, le=2**53, description="the larger; default: all")] = None,
    ) -> Response[ConsistencyProof]:
        logs: Logs = request.app.state.logs
        new = await _tree_size(request, pool, coverage_id, "new", new)
        old = _within(old, new, "old")
        tree = await logs.tree(pool, coverage_id, new)
        proof = ConsistencyProof(
            old_size=old,
            new_size=new,
            hashes=_b64(tree.consistency_proof(old, new)),
            checkpoint=logs.checkpoint(coverage_id, tree, new),
        )
        return Response(proof, headers=_cached(settings))


async def _tree_size(
    request: Request[Any, Any, State], pool: asyncpg.Pool, coverage_id: str, name: str, size: int | None
) -> int:
    """The tree size a request asks for in parameter `name`: the whole log when absent, refused beyond it.

    msgspec's lax reading of query values takes `?size=null` for an absent size; the document says an integer, so
    it is refused like any other non-integer (before the database is asked)."""
    if size is None and name in request.query_params:
        raise ValidationException(f"query parameter {name!r} must be an integer")
    async with pool.acquire() as conn:
        head = (await find_coverage(conn, coverage_id)).state.version
    return head if size is None else _within(size, head, name)


def _within(value: int, limit: int, name: str) -> int:
    if value > limit:
        raise BeyondTheLog(f"{name} {value} is beyond {limit}", limit=limit)
    return value


def _cached(settings: Settings) -> dict[str, str]:
    return {"Cache-Control": public_cache_control(settings)}
