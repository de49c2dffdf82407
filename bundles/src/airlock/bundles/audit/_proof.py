"""Inclusion proofs of audit entries that a third party checks offline.

A proof (``airlock audit prove``) is one JSON file::

    {
      "format": "airlock-audit-inclusion-proof/v1",
      "entry": "<the entry's canonical JSON: exactly the bytes of the leaf>",
      "leaf_index": 41,                   # entry seq - 1
      "tree_size": 120,                   # the checkpoint's size
      "leaf_hash": "<base64 SHA-256(0x00 || entry)>",
      "inclusion_path": ["<base64>", ...],  # RFC 6962 PATH, bottom up
      "checkpoint": "<the signed checkpoint note>"
    }

:func:`verify_inclusion_proof` needs nothing but the proof, the signed
checkpoint note and the home's public checkpoint key: it checks the note's
signature, recomputes the leaf from the entry text (which must be canonical
and carry ``seq = leaf_index + 1``) and walks the inclusion path up to the
note's root (RFC 9162 §2.1.3.2). By hand, the same is: ``SHA-256(0x00 ||
entry)``, then for each path hash, ``SHA-256(0x01 || left || right)``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key
from sqlalchemy import Engine
from sqlmodel import Session

from airlock.bundles.audit._checkpoint import Checkpoint, verify_checkpoint
from airlock.bundles.audit._checkpoint_store import get_checkpoint, stored_tree
from airlock.bundles.audit._log import AuditRecord
from airlock.bundles.audit._merkle import ProofError, hash_leaf, verify_inclusion
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import IntegrityError, MediaError, NotFoundError

PROOF_FORMAT = "airlock-audit-inclusion-proof/v1"


@dataclass(frozen=True)
class InclusionProof:
    """That one entry is leaf ``leaf_index`` of the tree a signed checkpoint commits to."""

    entry: str
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]
    checkpoint: str

    @property
    def leaf_hash(self) -> bytes:
        """``SHA-256(0x00 || entry)``."""
        return hash_leaf(self.entry.encode("utf-8"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by ``airlock audit prove``."""
        return {
            "format": PROOF_FORMAT,
            "entry": self.entry,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "inclusion_path": [_b64(h) for h in self.path],
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_dict(cls, data: Any) -> InclusionProof:
        """Parses :meth:`to_dict` output.

        Raises:
            MediaError: not an inclusion proof of this format.
        """
        try:
            if data["format"] != PROOF_FORMAT:
                raise MediaError(f"not an {PROOF_FORMAT} file (format {data['format']!r})")
            return cls(
                entry=str(data["entry"]),
                leaf_index=_int(data["leaf_index"]),
                tree_size=_int(data["tree_size"]),
                path=tuple(base64.b64decode(h, validate=True) for h in data["inclusion_path"]),
                checkpoint=str(data.get("checkpoint", "")),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MediaError(
                f"not a readable inclusion proof ({type(exc).__name__}: {exc})",
                hint="pass the proof.json written by `airlock audit prove`",
            ) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value


def prove_entry(engine: Engine, seq: int, checkpoint_size: int | None = None) -> InclusionProof:
    """The inclusion proof of entry ``seq`` against a stored checkpoint (default: the newest).

    The tree is built from the stored leaf hashes; a proof is only written when
    that tree has the checkpoint's root and the entry still matches its leaf.

    Raises:
        NotFoundError: no such entry, or no checkpoint that covers it.
        IntegrityError: the stored log no longer matches the checkpoint.
    """
    checkpoint = get_checkpoint(engine, checkpoint_size)
    if not 1 <= seq <= checkpoint.size:
        raise NotFoundError(
            f"entry {seq} is not covered by the checkpoint of {checkpoint.size} entries",
            hint="write a newer checkpoint (`airlock audit checkpoint`) or pick another entry",
        )
    with Session(engine) as session:
        record = session.get(AuditRecord, seq)
        tree = stored_tree(session, checkpoint.size)
    if record is None:
        raise NotFoundError(f"the audit log has no entry {seq}")
    entry = canonical_bytes(record.entry()).decode("utf-8")
    if (
        tree.size != checkpoint.size
        or tree.root() != checkpoint.root
        or hash_leaf(entry.encode("utf-8")) != tree.leaf(seq - 1)
    ):
        raise IntegrityError(
            f"the stored log does not match its checkpoint of {checkpoint.size} entries",
            hint="the log was altered: run `airlock audit verify` and keep the database",
        )
    return InclusionProof(
        entry=entry,
        leaf_index=seq - 1,
        tree_size=checkpoint.size,
        path=tuple(tree.inclusion_proof(seq - 1, checkpoint.size)),
        checkpoint=checkpoint.note,
    )


@dataclass(frozen=True)
class ProofResult:
    """What a verified proof shows."""

    checkpoint: Checkpoint
    entry: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``--json``."""
        return {
            "ok": True,
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root": self.checkpoint.root.hex(),
            "seq": self.entry.get("seq"),
            "entry": self.entry,
        }


def verify_inclusion_proof(proof: InclusionProof, note: str, key: Key) -> ProofResult:
    """Checks a proof offline against a signed checkpoint note and the signer's public key.

    Raises:
        MediaError: the note is not a signed checkpoint.
        SignatureError: the note is not validly signed by ``key``.
        IntegrityError: the entry or the path does not lead to the note's root.
    """
    checkpoint = verify_checkpoint(note, {"": key})
    if proof.tree_size != checkpoint.size:
        raise IntegrityError(
            f"the proof is for a tree of {proof.tree_size} entries, "
            f"the checkpoint signs {checkpoint.size}",
            hint="use the checkpoint the proof was made against (it is inside proof.json)",
        )
    try:
        entry = json.loads(proof.entry)
    except ValueError:
        raise IntegrityError("the entry in the proof is not JSON") from None
    if not isinstance(entry, dict) or canonical_bytes(entry) != proof.entry.encode("utf-8"):
        raise IntegrityError("the entry in the proof is not in canonical JSON form")
    if entry.get("seq") != proof.leaf_index + 1:
        raise IntegrityError(
            f"the entry says it is number {entry.get('seq')}, the proof puts it at "
            f"{proof.leaf_index + 1}"
        )
    try:
        verify_inclusion(
            proof.leaf_hash, proof.leaf_index, proof.tree_size, proof.path, checkpoint.root
        )
    except ProofError as exc:
        raise IntegrityError(
            f"entry {proof.leaf_index + 1} is not in the signed log: {exc}",
            hint="the entry or the proof was altered",
        ) from None
    return ProofResult(checkpoint, entry)


def read_proof_file(text: str) -> InclusionProof:
    """Parses a proof file's text.

    Raises:
        MediaError: not JSON, or not an inclusion proof.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise MediaError(
            "the proof file is not JSON", hint="pass the proof.json of `airlock audit prove`"
        ) from None
    return InclusionProof.from_dict(data)
