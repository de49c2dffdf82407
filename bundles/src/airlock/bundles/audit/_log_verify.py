"""Verifying a whole audit log against its Merkle tree and signed checkpoints.

:func:`verify_log` streams the entries in ``seq`` order and, for each one,
recomputes its RFC 6962 leaf from its canonical JSON, checks the numbering
and the hash chain, and adds the leaf to a Merkle tree. Whenever the tree
reaches the size of a checkpoint (stored in the log's database, or given
from outside), the checkpoint's signature is checked with the home's
checkpoint key, its root is compared with the tree's, and a consistency proof
from the previous checkpoint is computed and verified (RFC 9162 §2.1.4.2).
A checkpoint larger than the log means the log was truncated.

Two more cross-checks catch evidence that was removed:

* every ``audit.checkpoint`` entry written with outcome ``success`` was
  written with the checkpoint of exactly its own size (``write_checkpoint``
  signs the tree up to that entry), so the log itself lists the checkpoint
  rows that must exist; a missing one was deleted;
* on a spoke, the checkpoint the hub acknowledged (cosigned by the hub as
  witness, kept in ``hub_return``: :mod:`airlock.bundles.audit._witness`) is
  checked like a stored one, after its cosignature verifies with the hub's
  witness key that reached the site in verified Director metadata. A log
  shorter than it was truncated after the hub saw it.

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
``missing-checkpoint``  an ``audit.checkpoint`` entry's checkpoint row was deleted
``bad-cosignature``  the hub-acknowledged checkpoint's witness cosignature does not verify
===============  ====================================================================

The entry kinds are a diagnosis (:mod:`airlock.bundles.audit._diagnose`): the
stored leaf hash still commits to the position an entry was written at, so a
moved entry is found by trying nearby positions. Inclusion proofs
(:mod:`airlock.bundles.audit._proof`) use the same tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from securesystemslib.signer import Key
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from airlock.bundles.audit._checkpoint import Checkpoint, read_checkpoint, verify_checkpoint
from airlock.bundles.audit._checkpoint_store import CHECKPOINT_ACTION, stored_checkpoints
from airlock.bundles.audit._diagnose import diagnose
from airlock.bundles.audit._log import GENESIS, AuditRecord, chain_hash, leaf_hash
from airlock.bundles.audit._merkle import MerkleTree, ProofError, verify_consistency
from airlock.bundles.audit._witness import acknowledged_checkpoint, check_cosignature
from airlock.bundles.errors import MediaError, SignatureError

KINDS = (
    "modified",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "rewritten",
    "bad-signature",
    "bad-checkpoint",
    "missing-checkpoint",
    "bad-cosignature",
)


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
    acknowledged_checked: int | None = None
    """The size of the hub-acknowledged checkpoint that was verified (None: none kept)."""

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
            "acknowledged_checked": self.acknowledged_checked,
        }


@dataclass
class _Pending:
    """A checkpoint to check when the tree reaches its size."""

    label: str
    note: str
    size: int
    row_size: int | None = None
    row_root: str | None = None
    witnessed: bool = False


@dataclass
class _Walk:
    engine: Engine
    keys: Mapping[str, Key] | None
    tree: MerkleTree = field(default_factory=MerkleTree)
    head: bytes = GENESIS
    checked: int = 0
    good: Checkpoint | None = None
    row_sizes: set[int] = field(default_factory=set)
    acknowledged: int | None = None


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
            :attr:`~airlock.bundles.audit._checkpoint_store.CheckpointKey.keys`);
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
            _check_recorded_checkpoint(walk, record)
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
        acknowledged_checked=walk.acknowledged,
    )


def _pending(walk: _Walk, external: Sequence[str]) -> list[_Pending]:
    """Every checkpoint to check, by the size its note signs (malformed ones stop the walk)."""
    found: list[_Pending] = []
    for row in stored_checkpoints(walk.engine):
        found.append(_Pending(f"stored #{row.size}", row.note, row.size, row.size, row.root_hash))
    walk.row_sizes = {item.size for item in found}
    for index, note in enumerate(external, start=1):
        found.append(_Pending(f"given #{index}", note, -1))
    acknowledged = acknowledged_checkpoint(walk.engine)
    if acknowledged is not None:
        try:
            check_cosignature(acknowledged)
        except (MediaError, SignatureError) as exc:
            raise _Stop(
                _bad(walk, None, "bad-cosignature", f"checkpoint {acknowledged.label}: {exc}")
            ) from None
        found.append(_Pending(acknowledged.label, acknowledged.note, -1, witnessed=True))
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
        acknowledged_checked=walk.acknowledged,
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
        seq, kind, problem = diagnose(walk.engine, record, expected, leaf)
        raise _Stop(_bad(walk, seq, kind, problem))
    walk.tree.append(leaf)
    walk.head = link


def _check_recorded_checkpoint(walk: _Walk, record: AuditRecord) -> None:
    """An ``audit.checkpoint`` entry of outcome success needs its row, of its own size."""
    if record.action != CHECKPOINT_ACTION or record.outcome != "success":
        return
    if record.seq not in walk.row_sizes:
        raise _Stop(
            _bad(
                walk,
                record.seq,
                "missing-checkpoint",
                f"entry {record.seq} records a signed checkpoint of {record.seq} entries, "
                "but its stored checkpoint is gone: deleted",
                record.seq,
            )
        )


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
    walk.good = replace(checkpoint)
    if item.witnessed:
        walk.acknowledged = size
    else:
        walk.checked += 1
