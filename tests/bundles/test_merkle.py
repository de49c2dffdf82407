"""The RFC 6962 Merkle tree: reference vectors, a naive recursive twin, and broken proofs."""

from __future__ import annotations

import hashlib

import pytest

from airlock.bundles.audit import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    hash_children,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's RFC 6962 reference tree (transparency-dev/merkle testonly).
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    if m == len(leaves):
        return [] if complete else [naive_mth(leaves)]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m <= k:
        return [*naive_subproof(m, leaves[:k], complete), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


LEAVES_64 = [hash_leaf(f"entry {i}".encode()) for i in range(64)]
TREE_64 = MerkleTree(LEAVES_64)


def test_reference_roots_for_every_size() -> None:
    tree = MerkleTree()
    assert tree.root() == EMPTY_ROOT == REFERENCE_ROOTS[0]
    for size, data in enumerate(REFERENCE_LEAVES, start=1):
        tree.append(hash_leaf(data))
        assert tree.root() == REFERENCE_ROOTS[size]
    for size, root in enumerate(REFERENCE_ROOTS):
        assert tree.root(size) == root


def test_reference_proofs() -> None:
    tree = MerkleTree([hash_leaf(d) for d in REFERENCE_LEAVES])
    assert tree.inclusion_proof(0, 8) == [
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]
    assert tree.inclusion_proof(1, 5) == [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]
    assert tree.consistency_proof(6, 8) == [
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]
    assert tree.consistency_proof(2, 5) == [
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]


def test_roots_match_the_naive_definition_for_sizes_1_to_64() -> None:
    for size in range(65):
        assert TREE_64.root(size) == naive_mth(LEAVES_64[:size])


def test_every_inclusion_proof_up_to_64_is_rfc_path_and_verifies() -> None:
    for size in range(1, 65):
        root = TREE_64.root(size)
        for index in range(size):
            proof = TREE_64.inclusion_proof(index, size)
            assert proof == naive_path(index, LEAVES_64[:size])
            verify_inclusion(LEAVES_64[index], index, size, proof, root)


def test_every_consistency_proof_up_to_64_is_rfc_proof_and_verifies() -> None:
    for new in range(1, 65):
        new_root = TREE_64.root(new)
        for old in range(1, new + 1):
            proof = TREE_64.consistency_proof(old, new)
            expected = [] if old == new else naive_subproof(old, LEAVES_64[:new], True)
            assert proof == expected
            verify_consistency(old, new, TREE_64.root(old), new_root, proof)


def test_inclusion_proof_alterations_fail() -> None:
    size, index = 13, 6
    root, proof, leaf = TREE_64.root(size), TREE_64.inclusion_proof(6, 13), LEAVES_64[6]
    bad_cases = [
        (leaf, index - 1, size, proof, root),
        (leaf, index + 1, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (LEAVES_64[7], index, size, proof, root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [root, *proof], root),
        (leaf, index, size, proof[:-1], root),
        (leaf, index, size, proof, root),
    ]
    flipped = [bytes([proof[1][0] ^ 8]) + proof[1][1:]]
    bad_cases[-1] = (leaf, index, size, [proof[0], *flipped, *proof[2:]], root)
    for case in bad_cases:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


def test_consistency_proof_alterations_fail() -> None:
    old, new = 6, 13
    r1, r2, proof = TREE_64.root(old), TREE_64.root(new), TREE_64.consistency_proof(old, new)
    bad_cases = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2 + 1, r1, r2, proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, proof[:-1]),
        (old, new, r1, r2, [proof[0], hash_children(proof[1], proof[1]), *proof[2:]]),
        (new, old, r2, r1, proof),
        (old, old, r1, r2, []),
    ]
    for case in bad_cases:
        with pytest.raises(ProofError):
            verify_consistency(*case)


def test_trivial_consistency() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, TREE_64.root(5), [])
    verify_consistency(5, 5, TREE_64.root(5), TREE_64.root(5), [])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, EMPTY_ROOT, TREE_64.root(5), [TREE_64.root(5)])


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ProofError):
        TREE_64.inclusion_proof(64)
    with pytest.raises(ProofError):
        TREE_64.root(65)
    with pytest.raises(ProofError):
        TREE_64.consistency_proof(10, 9)
    with pytest.raises(ValueError):
        MerkleTree().append(b"short")
