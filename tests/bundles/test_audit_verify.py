"""`verify_log`: each kind of tampering is caught and the first bad entry named.

The log is a real SQLite database written by `AuditLog`; the tampering is
plain SQL, as an attacker with database access would do it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from sqlalchemy import Engine, text
from sqlmodel import Session

from airlock.bundles.audit import (
    CHECKPOINT_ACTION,
    AuditCheckpoint,
    AuditLog,
    AuditRecord,
    HubReturnRecord,
    InclusionProof,
    chain_hash,
    cosign,
    leaf_hash,
    prove_entry,
    sign_checkpoint,
    stored_tree,
    verify_engine,
    verify_inclusion_proof,
    verify_log,
    write_checkpoint,
)
from airlock.bundles.db import create_tables, make_engine, session_scope
from airlock.bundles.errors import IntegrityError, MediaError, SignatureError

ORIGIN = "airlock/hub/test"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
SIGNER = CryptoSigner.generate_ed25519()
KEYS = {ORIGIN: SIGNER.public_key}


@dataclass
class Log:
    engine: Engine
    audit: AuditLog

    def add(self, count: int) -> None:
        start = self.audit.count()
        with session_scope(self.engine) as session:
            for i in range(count):
                self._record(session, start + i)

    def _record(self, session: Session, i: int) -> None:
        self.audit.record(
            "hub.model.add",
            "success",
            object=f"iris@{i}",
            details={"model": f"iris@{i}", "files": ["model.onnx"]},
            principal="alice",
            when=T0 + dt.timedelta(minutes=i),
            session=session,
        )

    def checkpoint(self) -> int:
        made = write_checkpoint(self.audit, SIGNER, ORIGIN, T0 + dt.timedelta(days=1))
        return made.size

    def sql(self, *statements: str, **params: object) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)


def _open(path: Path) -> Log:
    engine = make_engine(f"sqlite:///{path}")
    create_tables(engine, [AuditRecord, AuditCheckpoint])
    return Log(engine, AuditLog(engine, "hub"))


@pytest.fixture(scope="module")
def signed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 entries: checkpoints at 9 (8 + its own entry) and 16; 4 entries after."""
    path = tmp_path_factory.mktemp("template") / "audit.db"
    template = _open(path)
    template.add(8)
    assert template.checkpoint() == 9
    template.add(6)
    assert template.checkpoint() == 16
    template.add(4)
    template.engine.dispose()  # closes the WAL into the file
    return path


@pytest.fixture
def signed(signed_template: Path, tmp_path: Path) -> Iterator[Log]:
    shutil.copyfile(signed_template, tmp_path / "audit.db")
    opened = _open(tmp_path / "audit.db")
    yield opened
    opened.engine.dispose()


def test_an_intact_log_verifies_with_every_checkpoint(signed: Log) -> None:
    report = verify_log(signed.engine, KEYS)
    assert report.ok and report.kind == "" and report.first_bad_seq is None
    assert report.entries == 20 and report.checkpoints_checked == 2
    assert report.latest_checkpoint == {
        "origin": ORIGIN,
        "size": 16,
        "root": stored_tree(Session(signed.engine), 16).root().hex(),
    }
    assert report.root == stored_tree(Session(signed.engine)).root().hex()
    assert report.head == verify_engine(signed.engine).head
    assert report.to_dict()["ok"] is True


def test_a_checkpoint_covers_its_own_entry(signed: Log) -> None:
    entry = signed.audit.entries()[15]
    assert (entry.seq, entry.action, entry.details) == (
        16,
        CHECKPOINT_ACTION,
        f'{{"keyid": "{SIGNER.public_key.keyid}", "origin": "{ORIGIN}"}}',
    )


def test_modified_field(signed: Log) -> None:
    signed.sql("UPDATE audit_log SET principal = 'mallory' WHERE seq = 5")
    report = verify_log(signed.engine, KEYS)
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "modified", 5)
    assert report.entries == 4


def test_modified_details_after_the_last_checkpoint(signed: Log) -> None:
    signed.sql("UPDATE audit_log SET details = '{}' WHERE seq = 19")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("modified", 19)


def test_deleted_row(signed: Log) -> None:
    signed.sql("DELETE FROM audit_log WHERE seq = 7")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("deleted", 7)
    assert "entry 7 missing" in report.problem


def test_deleted_row_with_the_gap_renumbered_away(signed: Log) -> None:
    signed.sql(
        "DELETE FROM audit_log WHERE seq = 7",
        "UPDATE audit_log SET seq = -(seq - 1) WHERE seq > 7",
        "UPDATE audit_log SET seq = -seq WHERE seq < 0",
    )
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("deleted", 7)


def _forged(log: Log, seq: int, previous_chain: str) -> AuditRecord:
    record = AuditRecord(
        seq=seq,
        event_id="forged",
        time=(T0 + dt.timedelta(minutes=seq, seconds=30)).isoformat(),
        component="hub",
        principal="alice",
        action="hub.assign",
        object="plant-7:iris@666",
        outcome="success",
        leaf_hash="",
        chain_hash="",
    )
    leaf = leaf_hash(record.entry())
    record.leaf_hash = leaf.hex()
    record.chain_hash = chain_hash(bytes.fromhex(previous_chain), leaf).hex()
    return record


def test_inserted_row_with_correct_hashes_in_the_middle(signed: Log) -> None:
    before = signed.audit.entries()[3]  # entry 4
    signed.sql(
        "UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 5",
        "UPDATE audit_log SET seq = -seq WHERE seq < 0",
    )
    with Session(signed.engine) as session:
        session.add(_forged(signed, 5, before.chain_hash))
        session.commit()
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("inserted", 5)


def test_inserted_row_at_the_end(signed: Log) -> None:
    with Session(signed.engine) as session:
        session.add(_forged(signed, 21, "00" * 32))
        session.commit()
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("inserted", 21)


@pytest.mark.parametrize(("a", "b"), [(3, 7), (11, 12)])
def test_reordered_rows(signed: Log, a: int, b: int) -> None:
    signed.sql(
        "UPDATE audit_log SET seq = -1 WHERE seq = :a",
        "UPDATE audit_log SET seq = :a WHERE seq = :b",
        "UPDATE audit_log SET seq = :b WHERE seq = -1",
        a=a,
        b=b,
    )
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("reordered", a)


def test_truncated_after_a_checkpoint(signed: Log) -> None:
    signed.sql("DELETE FROM audit_log WHERE seq > 12")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("truncated", 13)
    assert report.entries == 12 and report.checkpoints_checked == 1


def test_truncation_with_its_checkpoint_removed_is_caught_by_a_kept_copy(signed: Log) -> None:
    kept = signed.engine.connect().execute(
        text("SELECT note FROM audit_checkpoint WHERE size = 16")
    )
    note = kept.scalar_one()
    signed.sql(
        "DELETE FROM audit_log WHERE seq > 12", "DELETE FROM audit_checkpoint WHERE size = 16"
    )
    assert verify_log(signed.engine, KEYS).ok  # the local evidence is gone ...
    report = verify_log(signed.engine, KEYS, external=[note])  # ... but not the auditor's copy
    assert (report.kind, report.first_bad_seq) == ("truncated", 13)


def test_rewritten_entries_with_recomputed_hashes(signed: Log) -> None:
    records = signed.audit.entries()
    previous = bytes.fromhex(records[10].chain_hash)  # entry 11 stays
    with Session(signed.engine) as session:
        for record in records[11:]:
            row = session.get(AuditRecord, record.seq)
            assert row is not None
            if row.seq == 12:
                row.principal = "mallory"
            leaf = leaf_hash(row.entry())
            row.leaf_hash, row.chain_hash = leaf.hex(), chain_hash(previous, leaf).hex()
            previous = bytes.fromhex(row.chain_hash)
            session.add(row)
        session.commit()
    assert verify_engine(signed.engine).ok  # the chain alone cannot tell
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq, report.bad_checkpoint) == ("rewritten", 10, 16)
    assert "between 10 and 16" in report.problem


def test_checkpoint_with_a_bad_signature(signed: Log) -> None:
    other = CryptoSigner.generate_ed25519()
    root = stored_tree(Session(signed.engine), 16).root()
    forged = sign_checkpoint(ORIGIN, 16, root, other).note
    signed.sql("UPDATE audit_checkpoint SET note = :note WHERE size = 16", note=forged)
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq, report.bad_checkpoint) == ("bad-signature", None, 16)


def test_checkpoint_whose_note_was_edited(signed: Log) -> None:
    signed.sql("UPDATE audit_checkpoint SET note = replace(note, '\n9\n', '\n8\n') WHERE size = 9")
    report = verify_log(signed.engine, KEYS)
    assert report.kind == "bad-signature" and report.bad_checkpoint == 8


def test_checkpoint_row_disagreeing_with_its_note(signed: Log) -> None:
    signed.sql("UPDATE audit_checkpoint SET root_hash = '00' WHERE size = 9")
    assert verify_log(signed.engine, KEYS).kind == "bad-checkpoint"


def test_without_keys_roots_are_still_compared(signed: Log) -> None:
    report = verify_log(signed.engine, None)
    assert report.ok and not report.signatures_checked and report.checkpoints_checked == 2
    signed.sql("DELETE FROM audit_log WHERE seq > 12")
    assert verify_log(signed.engine, None).kind == "truncated"


def test_a_checkpoint_is_refused_over_a_log_with_gaps(signed: Log) -> None:
    signed.sql("DELETE FROM audit_log WHERE seq = 3")
    with pytest.raises(MediaError, match="20 entries but its newest is number 21"):
        signed.checkpoint()
    assert signed.audit.count() == 19  # the checkpoint's own entry was rolled back


def test_inclusion_proof_round_trip_and_alterations(signed: Log) -> None:
    proof = prove_entry(signed.engine, 5)
    assert (proof.leaf_index, proof.tree_size) == (4, 16)
    result = verify_inclusion_proof(proof, proof.checkpoint, SIGNER.public_key)
    assert result.entry["principal"] == "alice" and result.entry["seq"] == 5
    again = InclusionProof.from_dict(proof.to_dict())
    assert again == proof

    altered_entry = InclusionProof(
        proof.entry.replace("alice", "mallo"), 4, 16, proof.path, proof.checkpoint
    )
    with pytest.raises(IntegrityError, match="not in the signed log"):
        verify_inclusion_proof(altered_entry, proof.checkpoint, SIGNER.public_key)
    moved = InclusionProof(proof.entry, 5, 16, proof.path, proof.checkpoint)
    with pytest.raises(IntegrityError, match="says it is number 5"):
        verify_inclusion_proof(moved, proof.checkpoint, SIGNER.public_key)
    bad_path = InclusionProof(
        proof.entry, 4, 16, (proof.path[1], *proof.path[1:]), proof.checkpoint
    )
    with pytest.raises(IntegrityError):
        verify_inclusion_proof(bad_path, proof.checkpoint, SIGNER.public_key)
    with pytest.raises(SignatureError):
        verify_inclusion_proof(proof, proof.checkpoint, CryptoSigner.generate_ed25519().public_key)
    older = prove_entry(signed.engine, 5, 9)
    with pytest.raises(IntegrityError, match="tree of 9 entries"):
        verify_inclusion_proof(older, proof.checkpoint, SIGNER.public_key)


def test_no_proof_from_an_altered_log(signed: Log) -> None:
    signed.sql("UPDATE audit_log SET leaf_hash = chain_hash WHERE seq = 3")
    with pytest.raises(IntegrityError, match="does not match its checkpoint"):
        prove_entry(signed.engine, 3)


def test_malformed_checkpoints_are_named(signed: Log) -> None:
    report = verify_log(signed.engine, KEYS, external=["not a checkpoint\n"])
    assert (report.kind, report.entries) == ("bad-checkpoint", 0)
    assert "given #1" in report.problem
    signed.sql("UPDATE audit_checkpoint SET note = 'garbage' WHERE size = 9")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.bad_checkpoint) == ("bad-checkpoint", 9)


def test_a_deleted_checkpoint_row_is_caught_by_the_entry_that_recorded_it(signed: Log) -> None:
    signed.sql("DELETE FROM audit_checkpoint WHERE size = 9")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq, report.bad_checkpoint) == (
        "missing-checkpoint",
        9,
        9,
    )
    assert "entry 9 records a signed checkpoint of 9 entries" in report.problem
    assert not report.ok and report.checkpoints_checked == 0


def test_the_newest_checkpoint_row_deleted_is_caught_too(signed: Log) -> None:
    signed.sql("DELETE FROM audit_checkpoint WHERE size = 16")
    report = verify_log(signed.engine, KEYS)
    assert (report.kind, report.first_bad_seq) == ("missing-checkpoint", 16)
    assert report.checkpoints_checked == 1


WITNESS = CryptoSigner.generate_ed25519()
WITNESS_NAME = "airlock/hub/witness"


def _cosigned(log: Log, size: int, witness: CryptoSigner = WITNESS) -> str:
    """The stored checkpoint of ``size`` entries, cosigned by the hub's witness key."""
    note = log.engine.connect().execute(
        text("SELECT note FROM audit_checkpoint WHERE size = :size"), {"size": size}
    )
    return cosign(note.scalar_one(), WITNESS_NAME, witness, T0 + dt.timedelta(days=2))


def _keep(log: Log, note: str, size: int) -> None:
    """Keeps a cosigned checkpoint as the one the hub acknowledged, as a spoke does."""
    create_tables(log.engine, [HubReturnRecord])
    key = WITNESS.public_key
    with session_scope(log.engine) as session:
        session.add(
            HubReturnRecord(
                hub_recipient="age1example",
                witness_name=WITNESS_NAME,
                witness_key=key.to_dict() | {"keyid": key.keyid},
                acknowledged_sequence=1,
                acknowledged_size=size,
                acknowledged_note=note,
            )
        )


def _acknowledge(log: Log, size: int, witness: CryptoSigner = WITNESS) -> None:
    _keep(log, _cosigned(log, size, witness), size)


def test_the_checkpoint_the_hub_acknowledged_is_verified(signed: Log) -> None:
    _acknowledge(signed, 16)
    report = verify_log(signed.engine, KEYS)
    assert report.ok and report.acknowledged_checked == 16 and report.checkpoints_checked == 2
    assert report.to_dict()["acknowledged_checked"] == 16


def test_a_log_truncated_below_the_acknowledged_checkpoint_is_caught(signed: Log) -> None:
    _acknowledge(signed, 16)
    signed.sql(
        "DELETE FROM audit_log WHERE seq > 12", "DELETE FROM audit_checkpoint WHERE size = 16"
    )
    report = verify_log(signed.engine, KEYS)  # the local checkpoint row is gone, but not the hub's
    assert (report.kind, report.first_bad_seq) == ("truncated", 13)
    assert "hub-acknowledged" in report.problem and report.acknowledged_checked is None


def test_a_rewritten_log_does_not_match_the_acknowledged_checkpoint(signed: Log) -> None:
    note = _cosigned(signed, 16)
    previous = bytes.fromhex(signed.audit.entries()[10].chain_hash)  # entry 11 stays
    with Session(signed.engine) as session:
        for seq in range(12, 21):  # entry 12 altered, the checkpoint entry 16 disguised
            row = session.get(AuditRecord, seq)
            assert row is not None
            if seq == 12:
                row.principal = "mallory"
            if seq == 16:
                row.action = "hub.model.add"
            leaf = leaf_hash(row.entry())
            row.leaf_hash, row.chain_hash = leaf.hex(), chain_hash(previous, leaf).hex()
            previous = bytes.fromhex(row.chain_hash)
            session.add(row)
        session.commit()
    signed.sql("DELETE FROM audit_checkpoint WHERE size = 16")
    assert verify_log(signed.engine, KEYS).ok  # every local trace is gone ...
    _keep(signed, note, 16)
    report = verify_log(signed.engine, KEYS)  # ... but the hub's cosigned checkpoint is kept
    assert (report.kind, report.first_bad_seq, report.bad_checkpoint) == ("rewritten", 10, 16)
    assert "hub-acknowledged" in report.problem


def test_an_acknowledgement_with_a_bad_cosignature_is_caught(signed: Log) -> None:
    _acknowledge(signed, 16, witness=CryptoSigner.generate_ed25519())
    report = verify_log(signed.engine, KEYS)
    assert report.kind == "bad-cosignature" and "hub-acknowledged" in report.problem
