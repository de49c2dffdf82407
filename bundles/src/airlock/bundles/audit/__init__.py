"""The tamper-evident audit log: the hash-chained table, its Merkle tree, signed
checkpoints, witness cosignatures, inclusion and consistency proofs, auditors' queries
and reports, and the diagnosis of a broken log.

Modules here are private (``_name.py``); other components import the names below.
Every command that changes state writes to the log, so this package loads with it:
the auditors' modules (verification, proofs, queries, reports) are imported on
first use (:mod:`airlock.bundles.lazy`).
"""

from typing import TYPE_CHECKING

from airlock.bundles.audit._checkpoint import (
    Checkpoint,
    checkpoint_body,
    ed25519_public_bytes,
    note_key_id,
    open_note,
    parse_checkpoint_body,
    read_checkpoint,
    sign_checkpoint,
    sign_note,
    verifier_key,
    verify_checkpoint,
)
from airlock.bundles.audit._checkpoint_store import (
    CHECKPOINT_ACTION,
    HUB_KEY_PATH,
    KEY_FILE,
    KEY_PEM,
    CheckpointKey,
    checkpoint_signer,
    get_checkpoint,
    home_checkpoint_key,
    home_origin,
    read_checkpoint_key,
    stored_tree,
    write_checkpoint,
)
from airlock.bundles.audit._cosignature import cosign, verify_cosignature
from airlock.bundles.audit._log import (
    GENESIS,
    AuditCheckpoint,
    AuditLog,
    AuditRecord,
    chain_hash,
    default_principal,
    failure_details,
    failure_outcome,
    leaf_hash,
    verify_engine,
)
from airlock.bundles.audit._merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    hash_children,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)
from airlock.bundles.audit._receipt import (
    RECEIPT_FORMAT,
    ImportReceipt,
    ReceiptFile,
    receipt_bytes,
    sign_receipt,
    verify_receipt,
)
from airlock.bundles.audit._witness import (
    HubReturnRecord,
    WitnessedCheckpoint,
    check_witnessed,
)
from airlock.bundles.lazy import lazy_exports

if TYPE_CHECKING:
    from airlock.bundles.audit._log_verify import verify_log
    from airlock.bundles.audit._proof import InclusionProof, prove_entry, verify_inclusion_proof
    from airlock.bundles.audit._query import (
        AUDIT_TABLE,
        COLUMNS,
        AuditQuery,
        iter_entries,
        parse_time,
        write_csv,
        write_jsonl,
    )
    from airlock.bundles.audit._report import check_log, render_report

__all__ = [
    "AUDIT_TABLE",
    "CHECKPOINT_ACTION",
    "COLUMNS",
    "EMPTY_ROOT",
    "GENESIS",
    "HUB_KEY_PATH",
    "KEY_FILE",
    "KEY_PEM",
    "RECEIPT_FORMAT",
    "AuditCheckpoint",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "Checkpoint",
    "CheckpointKey",
    "HubReturnRecord",
    "ImportReceipt",
    "InclusionProof",
    "MerkleTree",
    "ProofError",
    "ReceiptFile",
    "WitnessedCheckpoint",
    "chain_hash",
    "check_log",
    "check_witnessed",
    "checkpoint_body",
    "checkpoint_signer",
    "cosign",
    "default_principal",
    "ed25519_public_bytes",
    "failure_details",
    "failure_outcome",
    "get_checkpoint",
    "hash_children",
    "hash_leaf",
    "home_checkpoint_key",
    "home_origin",
    "iter_entries",
    "leaf_hash",
    "note_key_id",
    "open_note",
    "parse_checkpoint_body",
    "parse_time",
    "prove_entry",
    "read_checkpoint",
    "read_checkpoint_key",
    "receipt_bytes",
    "render_report",
    "sign_checkpoint",
    "sign_note",
    "sign_receipt",
    "stored_tree",
    "verifier_key",
    "verify_checkpoint",
    "verify_consistency",
    "verify_cosignature",
    "verify_engine",
    "verify_inclusion",
    "verify_inclusion_proof",
    "verify_log",
    "verify_receipt",
    "write_checkpoint",
    "write_csv",
    "write_jsonl",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AUDIT_TABLE": "_query",
        "AuditQuery": "_query",
        "COLUMNS": "_query",
        "InclusionProof": "_proof",
        "check_log": "_report",
        "iter_entries": "_query",
        "parse_time": "_query",
        "prove_entry": "_proof",
        "render_report": "_report",
        "verify_inclusion_proof": "_proof",
        "verify_log": "_log_verify",
        "write_csv": "_query",
        "write_jsonl": "_query",
    },
)
