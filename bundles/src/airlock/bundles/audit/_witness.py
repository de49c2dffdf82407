"""The checkpoint a witness acknowledged, as the witnessed home keeps it, and its checks.

The hub witnesses each site's audit log (:mod:`airlock.bundles.audit._cosignature`):
it cosigns the site's checkpoint from each metrics bundle it imports, and its
next bundle carries the cosigned note back (the Director's ``x-airlock-return``
field). The spoke keeps it in one row, :class:`HubReturnRecord` — defined here,
in the core, because ``airlock audit verify`` reads it on a spoke.

What the row proves: the hub saw this site's log with at least
``acknowledged_size`` entries and that Merkle root. A local log that is now
shorter, or whose first entries no longer have that root, was truncated or
rewritten after the hub acknowledged it. :func:`check_witnessed` checks it
(what ``airlock spoke export-metrics`` does before it writes anything);
:func:`airlock.bundles.audit._log_verify.verify_log` checks the same during
its walk, as the checkpoint labelled ``hub-acknowledged``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key
from sqlalchemy import JSON, Column, Engine, inspect
from sqlmodel import Field, Session, SQLModel

from airlock.bundles.audit._checkpoint import (
    Checkpoint,
    ed25519_public_bytes,
    read_checkpoint,
    verify_checkpoint,
)
from airlock.bundles.audit._checkpoint_store import stored_tree
from airlock.bundles.audit._cosignature import verify_cosignature
from airlock.bundles.errors import LogConsistencyError, MediaError, SignatureError

ACKNOWLEDGED_LABEL = "hub-acknowledged"
TAMPERED_HINT = (
    "the site's audit log was truncated or rewritten after the hub acknowledged it, or the "
    "acknowledgement was altered: keep the database as it is, run `airlock audit verify`, "
    "and report it to the hub"
)


class HubReturnRecord(SQLModel, table=True):
    """Where metrics go and what the hub last acknowledged (from verified Director metadata)."""

    __tablename__ = "hub_return"

    id: int = Field(default=1, primary_key=True)
    hub_recipient: str
    witness_name: str
    witness_key: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    acknowledged_sequence: int = 0
    acknowledged_size: int = 0
    acknowledged_note: str = ""
    """The site's own checkpoint as the hub cosigned it ("" until the first acknowledgement)."""
    bundle_id: str = ""
    """The hub bundle that carried this record."""
    updated_at: str = ""


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """A checkpoint of this log, cosigned by a witness (the note carries both signatures)."""

    note: str
    witness_name: str
    witness_key: dict[str, Any]
    """The witness's Ed25519 key dict, with its ``keyid``."""
    size: int = 0
    """The size the home recorded for it (0: not recorded)."""
    label: str = ACKNOWLEDGED_LABEL


def acknowledged_checkpoint(engine: Engine) -> WitnessedCheckpoint | None:
    """The checkpoint the hub acknowledged, as this home keeps it (None: none, or not a spoke)."""
    if not inspect(engine).has_table(HubReturnRecord.__tablename__):
        return None
    with Session(engine) as session:
        row = session.get(HubReturnRecord, 1)
    if row is None or not row.acknowledged_note:
        return None
    return WitnessedCheckpoint(
        row.acknowledged_note, row.witness_name, dict(row.witness_key), row.acknowledged_size
    )


def parse_witness_key(data: Mapping[str, Any]) -> Key:
    """The witness's Ed25519 ``Key`` from its dict (which carries ``keyid``).

    Raises:
        SignatureError: not an Ed25519 key dict.
    """
    try:
        fields = dict(data)
        key = Key.from_dict(str(fields.pop("keyid")), fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureError(f"the witness key is malformed ({type(exc).__name__})") from None
    ed25519_public_bytes(key)
    return key


def check_cosignature(witnessed: WitnessedCheckpoint) -> None:
    """Checks the witness's cosignature, and that the recorded size is the signed one.

    Raises:
        MediaError: not a signed checkpoint note.
        SignatureError: the cosignature is missing or does not verify, the
            witness key is malformed, or the sizes differ.
    """
    verify_cosignature(
        witnessed.note, witnessed.witness_name, parse_witness_key(witnessed.witness_key)
    )
    signed = read_checkpoint(witnessed.note).size
    if witnessed.size and witnessed.size != signed:
        raise SignatureError(
            f"the {witnessed.label} checkpoint is recorded as {witnessed.size} entries "
            f"but signed for {signed}"
        )


def verify_witnessed(witnessed: WitnessedCheckpoint, keys: Mapping[str, Key]) -> Checkpoint:
    """:func:`check_cosignature`, then this home's own signature on the note.

    Raises:
        MediaError: not a signed note.
        SignatureError: a signature is missing or does not verify, or the sizes differ.
    """
    check_cosignature(witnessed)
    return verify_checkpoint(witnessed.note, keys)


def check_witnessed(
    engine: Engine, witnessed: WitnessedCheckpoint, keys: Mapping[str, Key]
) -> Checkpoint:
    """Checks a witnessed checkpoint against the local log in ``engine`` (fails closed).

    The cosignature must verify with the witness key, the note with this
    home's key (``keys``: by note key name), and the stored log must have at
    least the checkpoint's entries, the first of them with its root.

    Raises:
        LogConsistencyError: any of these fails.
    """
    what = f"the checkpoint the hub acknowledged ({witnessed.label})"
    try:
        checkpoint = verify_witnessed(witnessed, keys)
    except (MediaError, SignatureError) as exc:
        raise LogConsistencyError(
            f"{what} does not verify: {exc.message}", hint=TAMPERED_HINT
        ) from None
    with Session(engine) as session:
        tree = stored_tree(session, upto=checkpoint.size)
    if tree.size < checkpoint.size:
        raise LogConsistencyError(
            f"the local audit log has {tree.size} of the {checkpoint.size} entries of {what}: "
            "entries were removed after the hub saw them",
            hint=TAMPERED_HINT,
        )
    if tree.root() != checkpoint.root:
        raise LogConsistencyError(
            f"the first {checkpoint.size} entries of the local audit log do not match {what}: "
            "they were altered after the hub saw them",
            hint=TAMPERED_HINT,
        )
    return checkpoint
