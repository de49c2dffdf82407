"""Diagnosing a broken audit log: which entry, and what was done to it.

:func:`diagnose` is called by :func:`airlock.bundles.audit._log_verify.verify_log`
for the first entry that fails its checks. The stored leaf hash still commits
to the position an entry was written at, so a moved entry is found by trying
nearby positions (up to :data:`SEARCH_WINDOW` away). The kinds are a
diagnosis, not a proof: the proof is that the entry fails its checks.
"""

from __future__ import annotations

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from airlock.bundles.audit._log import AuditRecord, leaf_hash

SEARCH_WINDOW = 4096
"""How far from its place a moved entry is looked for (diagnosis only)."""
Diagnosis = tuple[int, str, str]
"""The first bad entry, the kind (``deleted``, ``inserted``, …) and the problem."""


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


def diagnose(engine: Engine, record: AuditRecord, expected: int, leaf: bytes) -> Diagnosis:
    """Names what happened to the log at ``record``, which failed its checks.

    Args:
        engine: The log's database.
        record: The entry read where entry ``expected`` should be.
        expected: The number the entry should have.
        leaf: ``record``'s recomputed leaf hash.

    Returns:
        The first bad entry, the kind and the problem.
    """
    seq = record.seq
    if seq != expected:
        missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
        return (expected, "deleted", f"{missing} missing: the next entry is {seq}")
    nxt = _next(engine, seq)
    if leaf.hex() == record.leaf_hash:
        if nxt is None:
            return (seq, "inserted", f"entry {seq} does not chain to the log: added afterwards")
        return (
            seq,
            "modified",
            f"entry {seq} does not chain to the entry before it: altered (hashes recomputed)",
        )
    origin = _written_at(engine, record)
    if origin == seq + 1:
        if nxt is not None and nxt.seq == seq + 1 and _leaf_at(nxt, seq) == nxt.leaf_hash:
            return (seq, "reordered", f"entries {seq} and {seq + 1} were swapped")
        return (seq, "deleted", f"entry {seq} was deleted and the later entries renumbered")
    if origin == seq - 1:
        return (
            seq - 1,
            "inserted",
            f"entry {seq - 1} was inserted: the entry after it was written as entry {seq - 1}",
        )
    if origin is not None:
        return (seq, "reordered", f"entry {seq} was written as entry {origin}: moved")
    if nxt is not None and nxt.seq == seq + 1 and _leaf_at(nxt, seq) == nxt.leaf_hash:
        return (
            seq,
            "inserted",
            f"entry {seq} was inserted: the entry after it was written as entry {seq}",
        )
    return (seq, "modified", f"entry {seq}: its content does not match its hash")
