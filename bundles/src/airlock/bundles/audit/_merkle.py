"""The RFC 6962 / RFC 9162 Merkle tree of the audit log: tree hashes, proofs, verification.

The tree is built over *leaf hashes* — ``SHA-256(0x00 || entry)``, what the
audit log stores per entry — so that the same leaves serve the hash chain and
the tree. An interior node is ``SHA-256(0x01 || left || right)``; the tree of
``n`` leaves splits at the largest power of two below ``n`` (RFC 6962 §2.1),
and the empty tree's hash is ``SHA-256("")``.

:class:`MerkleTree` keeps every complete, aligned subtree hash level by level
in flat ``bytearray`` s (about 64 bytes per leaf), so appending is amortised
O(1) and any earlier tree's root, an inclusion proof (``PATH``) or a
consistency proof (``PROOF``) costs O(log n) hashes. :func:`verify_inclusion`
and :func:`verify_consistency` are the verification algorithms of RFC 9162
§2.1.3.2 and §2.1.4.2; they take nothing but hashes and sizes, so a third
party can run them offline, and they raise :class:`ProofError` when a proof
does not verify.

Written here rather than taken from a library: the whole of it is ~200 lines,
has no dependencies, and is tested against the RFC 6962 reference vectors of
Certificate Transparency and a naive recursive implementation for every size
and pair up to 64 (``tests/bundles/test_merkle.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree."""


class ProofError(ValueError):
    """A Merkle proof does not verify (or the tree cannot produce the one asked for)."""


def hash_leaf(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree over leaf hashes, with proofs for any earlier size."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Adds one leaf hash (32 bytes) and every subtree it completes."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf_hash)}")
        self._levels[0] += leaf_hash
        index, level = self._size, 0
        self._size += 1
        while index & 1:
            left = self._node(level, index - 1)
            right = self._node(level, index)
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level + 1] += hash_children(left, right)
            index >>= 1
            level += 1

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index`` (0-based)."""
        if not 0 <= index < self._size:
            raise IndexError(f"no leaf {index} in a tree of {self._size}")
        return self._node(0, index)

    def _node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def _hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for ``0 <= start < end <= size``."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return self._node(width.bit_length() - 1, start // width)
        k = _split(width)
        return hash_children(self._hash(start, start + k), self._hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` leaves (default: all of them)."""
        size = self._size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ProofError(f"the tree has {self._size} leaves, not {size}")

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 ``PATH(index, D[size])``: the audit path of leaf ``index``, bottom up.

        Raises:
            ProofError: ``index`` is not a leaf of the tree of ``size`` leaves.
        """
        size = self._size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:  # walk down, collecting siblings top-down
            k = _split(end - start)
            if index < start + k:
                path.append(self._hash(start + k, end))
                end = start + k
            else:
                path.append(self._hash(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 ``PROOF(old_size, D[new_size])``: shows the old tree is a prefix.

        Empty when ``old_size`` is 0 or equals ``new_size``.

        Raises:
            ProofError: the sizes are out of order or beyond the tree.
        """
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ProofError(f"no consistency proof from {old_size} to {new_size} leaves")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while m != end - start:  # SUBPROOF(m, D[start:end], complete), top-down
            k = _split(end - start)
            if m <= k:
                proof.append(self._hash(start + k, end))
                end = start + k
            else:
                proof.append(self._hash(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            proof.append(self._hash(start, end))
        proof.reverse()
        return proof


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"a hash in the proof is not {HASH_SIZE} bytes long")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: checks that leaf ``index`` of the tree ``(size, root)`` is ``leaf_hash``.

    Raises:
        ProofError: the proof does not verify.
    """
    _check_hashes(leaf_hash, root, *proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the tree's root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: checks the tree ``(old_size, old_root)`` is a prefix of the new one.

    The empty tree is a prefix of every tree (no proof); equal sizes need
    equal roots and no proof.

    Raises:
        ProofError: the proof does not verify.
    """
    _check_hashes(old_root, new_root, *proof)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {new_size} leaves cannot extend one of {old_size}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ProofError("the consistency proof should be empty for these sizes")
        if old_size == new_size and old_root != new_root:
            raise ProofError("two trees of the same size have different root hashes")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != old_root:
        raise ProofError("the consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("the consistency proof does not lead to the new root hash")
