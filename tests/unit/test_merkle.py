"""The Merkle tree against published vectors: transparency-dev/merkle, the Go library behind Certificate
Transparency and Go's checksum database (tests/vectors/transparency-dev-merkle.json is a verbatim copy of its
testdata/inclusion and testdata/consistency, Apache-2.0; the leaves and roots below are its testonly/constants.go).
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from service.domain.merkle import (
    EMPTY_ROOT,
    ProofError,
    Tree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "transparency-dev-merkle.json").read_text())["vectors"]

LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def b64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def reference_tree() -> Tree:
    tree = Tree()
    for data in LEAF_INPUTS:
        tree.append(leaf_hash(bytes.fromhex(data)))
    return tree


def test_roots_of_every_prefix_match_the_published_ones() -> None:
    tree = reference_tree()
    assert [tree.root(size).hex() for size in range(9)] == ROOTS
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize("name", sorted(k for k in VECTORS if k.startswith("inclusion/")))
def test_inclusion_vectors(name: str) -> None:
    v = VECTORS[name]
    proof = [b64(p) for p in v["proof"] or []]
    verdict = verify_inclusion(b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, b64(v["root"]))
    assert verdict is not v["wantErr"], v["desc"]


@pytest.mark.parametrize("name", sorted(k for k in VECTORS if k.startswith("consistency/")))
def test_consistency_vectors(name: str) -> None:
    v = VECTORS[name]
    proof = [b64(p) for p in v["proof"] or []]
    verdict = verify_consistency(v["size1"], v["size2"], b64(v["root1"]), b64(v["root2"]), proof)
    assert verdict is not v["wantErr"], v["desc"]


def test_the_proofs_built_are_the_published_ones() -> None:
    tree = reference_tree()
    happy = [v for k, v in VECTORS.items() if k.endswith("happy-path.json")]
    assert len(happy) >= 8
    for v in happy:
        expected = [b64(p) for p in v["proof"] or []]
        if "leafIdx" in v:
            assert tree.inclusion_proof(v["leafIdx"], v["treeSize"]) == expected, v
        else:
            assert tree.consistency_proof(v["size1"], v["size2"]) == expected, v


def test_every_proof_of_larger_trees_verifies_and_any_change_breaks_it() -> None:
    rng = random.Random(6962)
    tree = Tree()
    leaves = [leaf_hash(rng.randbytes(rng.randrange(40))) for _ in range(70)]
    for leaf in leaves:
        tree.append(leaf)
    for size in range(1, 71):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert verify_inclusion(leaves[index], index, size, proof, root)
            assert not verify_inclusion(leaves[index], index, size, proof, leaves[index]) or size == 1
            if proof:
                bent = [*proof]
                bent[rng.randrange(len(bent))] = leaf_hash(b"bent")
                assert not verify_inclusion(leaves[index], index, size, bent, root)
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert verify_consistency(old, size, tree.root(old), root, proof)
            if old < size:
                assert not verify_consistency(old, size, leaf_hash(b"forged"), root, proof)
                assert not verify_consistency(old, size, tree.root(old), root, proof[:-1])


def test_a_rewritten_leaf_makes_the_old_root_unprovable() -> None:
    honest, forked = Tree(), Tree()
    for n in range(12):
        honest.append(leaf_hash(b"%d" % n))
        forked.append(leaf_hash(b"rewritten" if n == 5 else b"%d" % n))
    assert not verify_consistency(8, 12, honest.root(8), forked.root(12), forked.consistency_proof(8, 12))
    assert verify_consistency(4, 12, honest.root(4), forked.root(12), forked.consistency_proof(4, 12))


def test_proofs_beyond_the_tree_are_refused() -> None:
    tree = reference_tree()
    for ask in (lambda: tree.inclusion_proof(8, 8), lambda: tree.consistency_proof(0, 3),
                lambda: tree.consistency_proof(5, 4), lambda: tree.root(9)):  # fmt: skip
        with pytest.raises(ProofError):
            ask()
