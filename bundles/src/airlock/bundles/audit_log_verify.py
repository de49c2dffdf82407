"""Verifying a whole audit log against its Merkle tree and signed checkpoints.

:func:`verify_log` streams the entries in ``seq`` order and, for each one,
recomputes its RFC 6962 leaf from its canonical JSON, checks the numbering
and the hash chain, and adds the leaf to a Merkle tree. Whenever the tree
reaches the size of a checkpoint (stored in the log's database, or given
from outside), the checkpoint's signature is checked with the home's
checkpoint key, its root is compared with the tree's, and a consistency proof
from the previous checkpoint is computed and verified (RFC 9162 §2.1.4.2).
A checkpoint larger than the log means the log was truncated.

The first problem stops the walk and is named, with a *kind*:

===============  ====================================================================
``modified``     an entry's content no longer matches its hash (or its chain link)
``deleted``      an entry is missing (a gap, or later entries renumbered to hide it)
``inserted``     an entry was added that was never written by Airlock
``reordered``    an entry sits at another position than the one it was written at
``truncated``    the newest entries are gone: the log is shorter than a checkpoint
``rewritten``    the hashes were recomputed over altered entries: only a checkpoint
                 catches it, so the first bad entry is the first after the last good
                 checkpoint, and the problem names the range
``bad-signature``  a checkpoint's signature does not verify with the home's key
``bad-checkpoint`` a stored checkpoint is malformed or disagrees with its own note
===============  ====================================================================

The entry kinds are a diagnosis: the stored leaf hash still commits to the
position an entry was written at, so a moved entry is found by trying nearby
positions. Inclusion proofs (:mod:`airlock.bundles.audit_proof`) use the same
tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from securesystemslib.signer import Key
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from airlock.bundles.audit import GENESIS, AuditRecord, chain_hash, leaf_hash
from airlock.bundles.checkpoint import Checkpoint, read_checkpoint, verify_checkpoint
from airlock.bundles.checkpoint_store import stored_checkpoints
from airlock.bundles.errors import MediaError, SignatureError
from airlock.bundles.merkle import MerkleTree, ProofError, verify_consistency

KINDS = (
    "modified",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "rewritten",
    "bad-signature",
    "bad-checkpoint",
)
SEARCH_WINDOW = 4096
"""How far from its place a moved entry is looked for (diagnosis only)."""


@dataclass(frozen=True)
class LogReport:
    """The result of :func:`verify_log`."""

    ok: bool
    entries: int
    root: str
    first_bad_seq: int | None = None
    problem: str = ""
    kind: str = ""
    checkpoints_checked: int = 0
    latest_checkpoint: dict[str, Any] | None = None
    head: str = ""
    """The chain hash after the last verified entry."""
    signatures_checked: bool = True
    bad_checkpoint: int | None = None
    """The size of the checkpoint that failed, when one did."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``--json`` output."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "root": self.root,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "kind": self.kind,
            "problem": self.problem,
            "checkpoints_checked": self.checkpoints_checked,
            "latest_checkpoint": self.latest_checkpoint,
            "signatures_checked": self.signatures_checked,
            "bad_checkpoint": self.bad_checkpoint,
        }


@dataclass
class _Pending:
    """A checkpoint to check when the tree reaches its size."""

    label: str
    note: str
    size: int
    row_size: int | None = None
    row_root: str | None = None


@dataclass
class _Walk:
    engine: Engine
    keys: Mapping[str, Key] | None
    tree: MerkleTree = field(default_factory=MerkleTree)
    head: bytes = GENESIS
    checked: int = 0
    good: Checkpoint | None = None


class _Stop(Exception):
    def __init__(self, report: LogReport) -> None:
        self.report = report


def verify_log(
    engine: Engine,
    keys: Mapping[str, Key] | None,
    *,
    external: Sequence[str] = (),
    batch: int = 10_000,
) -> LogReport:
    """Verifies every entry and every checkpoint of the audit log in ``engine``.

    Args:
        engine: The hub's or spoke's database.
        keys: Checkpoint keys by note key name (the home's
            :attr:`~airlock.bundles.checkpoint_store.CheckpointKey.keys`);
            None skips the signature checks (roots are still compared).
        external: Signed checkpoint notes kept outside the database (an
            auditor's copies): checked like the stored ones.
        batch: Entries read per query.
    """
    walk = _Walk(engine, keys)
    try:
        pending = _pending(walk, external)
        while pending and pending[0].size == 0:
            _check_checkpoint(walk, pending.pop(0))
        for record in _stream(engine, batch):
            _check_entry(walk, record)
            while pending and pending[0].size == walk.tree.size:
                _check_checkpoint(walk, pending.pop(0))
        if pending:
            _check_signature(walk, pending[-1])
            size = walk.tree.size
            raise _Stop(
                _bad(
                    walk,
                    size + 1,
                    "truncated",
                    f"the log has {size} entries but a checkpoint ({pending[-1].label}) "
                    f"signed {pending[-1].size}: the newest entries were removed",
                )
            )
    except _Stop as stop:
        return stop.report
    return LogReport(
        ok=True,
        entries=walk.tree.size,
        root=walk.tree.root().hex(),
        checkpoints_checked=walk.checked,
        latest_checkpoint=_summary(walk.good),
        head=walk.head.hex(),
        signatures_checked=keys is not None,
    )


def _pending(walk: _Walk, external: Sequence[str]) -> list[_Pending]:
    """Every checkpoint to check, by the size its note signs (malformed ones stop the walk)."""
    found: list[_Pending] = []
    for row in stored_checkpoints(walk.engine):
        found.append(_Pending(f"stored #{row.size}", row.note, row.size, row.size, row.root_hash))
    for index, note in enumerate(external, start=1):
        found.append(_Pending(f"given #{index}", note, -1))
    for item in found:
        try:
            item.size = read_checkpoint(item.note).size
        except MediaError as exc:
            raise _Stop(
                _bad(walk, None, "bad-checkpoint", f"checkpoint {item.label}: {exc}", item.row_size)
            ) from None
    found.sort(key=lambda item: item.size)
    return found


def _stream(engine: Engine, batch: int) -> Iterator[AuditRecord]:
    after = 0
    with Session(engine) as session:
        while True:
            rows = list(
                session.exec(
                    select(AuditRecord)
                    .where(col(AuditRecord.seq) > after)
                    .order_by(col(AuditRecord.seq))
                    .limit(batch)
                )
            )
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq
            session.expunge_all()


def _bad(
    walk: _Walk, seq: int | None, kind: str, problem: str, checkpoint: int | None = None
) -> LogReport:
    return LogReport(
        ok=False,
        entries=walk.tree.size,
        root=walk.tree.root().hex(),
        first_bad_seq=seq,
        problem=problem,
        kind=kind,
        checkpoints_checked=walk.checked,
        latest_checkpoint=_summary(walk.good),
        head=walk.head.hex(),
        signatures_checked=walk.keys is not None,
        bad_checkpoint=checkpoint,
    )


def _summary(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root.hex()}


def _check_entry(walk: _Walk, record: AuditRecord) -> None:
    expected = walk.tree.size + 1
    leaf = leaf_hash(record.entry())
    link = chain_hash(walk.head, leaf)
    if record.seq != expected or leaf.hex() != record.leaf_hash or link.hex() != record.chain_hash:
        raise _Stop(_diagnose(walk, record, expected, leaf))
    walk.tree.append(leaf)
    walk.head = link


def _leaf_at(record: AuditRecord, seq: int) -> str:
    """The leaf hash ``record`` would have had if written as entry ``seq``."""
    return leaf_hash(record.entry() | {"seq": seq}).hex()


def _next(engine: Engine, seq: int) -> AuditRecord | None:
    with Session(engine) as session:
        return session.exec(
            select(AuditRecord).where(col(AuditRecord.seq) > seq).order_by(col(AuditRecord.seq))
        ).first()


def _written_at(engine: Engine, record: AuditRecord) -> int | None:
    """The position ``record`` was written at, when its stored leaf hash tells (nearest first)."""
    with Session(engine) as session:
        last = int(session.exec(select(func.max(AuditRecord.seq))).one() or 0)
    for distance in range(1, SEARCH_WINDOW + 1):
        for seq in (record.seq + distance, record.seq - distance):
            if 1 <= seq <= max(last, record.seq) and _leaf_at(record, seq) == record.leaf_hash:
                return seq
    return None


def _diagnose(walk: _Walk, record: AuditRecord, expected: int, leaf: bytes) -> LogReport:
    engine, seq = walk.engine, record.seq
    if seq != expected:
        missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
        return _bad(walk, expected, "deleted", f"{missing} missing: the next entry is {seq}")
    nxt = _next(engine, seq)
    if leaf.hex() == record.leaf_hash:
        if nxt is None:
            return _bad(
                walk, seq, "inserted", f"entry {seq} does not chain to the log: added afterwards"
            )
        return _bad(
            walk,
            seq,
            "modified",
            f"entry {seq} does not chain to the entry before it: altered (hashes recomputed)",
        )
    origin = _written_at(engine, record)
    if origin == seq + 1:
        if nxt is not None and nxt.seq == seq + 1 and _leaf_at(nxt, seq) == nxt.leaf_hash:
            return _bad(walk, seq, "reordered", f"entries {seq} and {seq + 1} were swapped")
        return _bad(
            walk, seq, "deleted", f"entry {seq} was deleted and the later entries renumbered"
        )
    if origin == seq - 1:
        return _bad(
            walk,
            seq - 1,
            "inserted",
            f"entry {seq - 1} was inserted: the entry after it was written as entry {seq - 1}",
        )
    if origin is not None:
        return _bad(walk, seq, "reordered", f"entry {seq} was written as entry {origin}: moved")
    if nxt is not None and nxt.seq == seq + 1 and _leaf_at(nxt, seq) == nxt.leaf_hash:
        return _bad(
            walk,
            seq,
            "inserted",
            f"entry {seq} was inserted: the entry after it was written as entry {seq}",
        )
    return _bad(walk, seq, "modified", f"entry {seq}: its content does not match its hash")


def _check_signature(walk: _Walk, item: _Pending) -> Checkpoint:
    try:
        checkpoint = (
            read_checkpoint(item.note)
            if walk.keys is None
            else verify_checkpoint(item.note, walk.keys)
        )
    except MediaError as exc:
        raise _Stop(_bad(walk, None, "bad-checkpoint", f"checkpoint {item.label}: {exc}")) from None
    except SignatureError as exc:
        raise _Stop(
            _bad(walk, None, "bad-signature", f"checkpoint {item.label}: {exc}", item.size)
        ) from None
    if item.row_size is not None and (
        item.row_size != checkpoint.size or item.row_root != checkpoint.root.hex()
    ):
        raise _Stop(
            _bad(
                walk,
                None,
                "bad-checkpoint",
                f"checkpoint {item.label}: its stored size or root differs from its signed note",
                item.size,
            )
        )
    return checkpoint


def _check_checkpoint(walk: _Walk, item: _Pending) -> None:
    checkpoint = _check_signature(walk, item)
    size = checkpoint.size
    if walk.tree.root() != checkpoint.root:
        start = walk.good.size + 1 if walk.good else 1
        raise _Stop(
            _bad(
                walk,
                start,
                "rewritten",
                f"the first {size} entries do not match the signed checkpoint {item.label}: "
                f"an entry between {start} and {size} was altered and the hashes recomputed",
                size,
            )
        )
    if walk.good is not None:
        try:
            proof = walk.tree.consistency_proof(walk.good.size, size)
            verify_consistency(walk.good.size, size, walk.good.root, checkpoint.root, proof)
        except ProofError as exc:
            raise _Stop(
                _bad(walk, None, "bad-checkpoint", f"checkpoint {item.label}: {exc}", size)
            ) from None
    walk.checked += 1
    walk.good = replace(checkpoint)
