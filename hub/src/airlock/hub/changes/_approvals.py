"""Approvers and approvals of change requests: registered Ed25519 keys, signed approvals,
rejections (see :mod:`airlock.hub.changes._changes`).
"""

from __future__ import annotations

import datetime as dt

from securesystemslib.signer import Key, Signer
from sqlmodel import Session, select

from airlock.bundles import events as events
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, NotFoundError, SignatureError, UsageError
from airlock.bundles.release import ChangeAuthorization
from airlock.hub.changes._changes import (
    emit,
    get_row,
)
from airlock.hub.changes._records import (
    ApproverInfo,
    ChangeRequest,
    check_text,
)
from airlock.hub.store._tables import HubChangeApprover, HubChangeRequest


def add_approver(
    session: Session, now: dt.datetime, name: str, key: Key, added_by: str
) -> ApproverInfo:
    """Registers ``name``'s Ed25519 public key.

    Raises:
        UsageError: no name, or not an Ed25519 key.
        ConflictError: the name, or the key, is already registered.
    """
    name = check_text("approver name", name, required=True)
    if key.keytype != "ed25519":
        raise UsageError(
            f"approver keys must be Ed25519, not {key.keytype}",
            hint="make one with `airlock hub change keygen --out approver.pem`",
        )
    if session.get(HubChangeApprover, name) is not None:
        raise ConflictError(f"approver {name!r} is already registered")
    clash = session.exec(
        select(HubChangeApprover).where(HubChangeApprover.keyid == key.keyid)
    ).first()
    if clash is not None:
        raise ConflictError(f"that key is already registered for approver {clash.name!r}")
    row = HubChangeApprover(
        name=name, keyid=key.keyid, public_key=key.to_dict(), added=utc_iso(now), added_by=added_by
    )
    session.add(row)
    return ApproverInfo(row.name, row.keyid, row.added, row.added_by)


def approver_key(session: Session, name: str) -> Key:
    """The registered public key of approver ``name``.

    Raises:
        NotFoundError: ``name`` is not a registered approver.
    """
    row = session.get(HubChangeApprover, name)
    if row is None:
        raise NotFoundError(
            f"{name!r} is not a registered change approver",
            hint="register the approver's public key with "
            "`airlock hub change approver add NAME --key approver.pub.pem`",
        )
    return Key.from_dict(row.keyid, dict(row.public_key))


def check_approver(row: HubChangeRequest, approver: str, doing: str) -> None:
    """The approver may decide on this change: not its requester, and on its approver list.

    Raises:
        UsageError: the approver is the requester, or not allowed for this change.
    """
    if approver.casefold() == row.requested_by.casefold():
        raise UsageError(
            f"{approver} requested change {row.number} and may not {doing} it",
            hint="another approver must decide: the approver may not be the requester",
        )
    if row.approvers and approver not in row.approvers:
        raise UsageError(
            f"{approver} is not an approver of change {row.number}",
            hint=f"its approvers are: {', '.join(row.approvers)}",
        )


def _decidable(row: HubChangeRequest, doing: str) -> None:
    retroactive = row.type == "emergency" and row.state == "review"
    if row.state != "authorize" and not retroactive:
        raise UsageError(
            f"change {row.number} is in {row.state}; only a change in authorize can be {doing}",
            hint=f"move it first: `airlock hub change move {row.number} --to authorize`",
        )
    if row.approval == "approved":
        raise ConflictError(f"change {row.number} is already approved by {row.approved_by}")


def approve(
    session: Session, now: dt.datetime, number: str, approver: str, signer: Signer
) -> ChangeRequest:
    """Records ``approver``'s signed approval; moves Authorize → Scheduled.

    The signature over :meth:`ChangeAuthorization.statement` is made with
    ``signer`` (the approver's private key) and verified against the key
    registered for ``approver`` before anything is recorded.

    Raises:
        NotFoundError: no such change, or ``approver`` is not registered.
        UsageError: wrong state, the approver is the requester or not allowed.
        ConflictError: already approved.
        SignatureError: the signature does not verify with the registered key.
    """
    row = get_row(session, number)
    _decidable(row, "approved")
    registered = approver_key(session, approver)
    check_approver(row, approver, "approve")
    unsigned = ChangeAuthorization(
        number=row.number,
        type=row.type,
        window_start=row.planned_start,
        window_end=row.planned_end,
        approved_by=approver,
        approved_at=utc_iso(now),
        approval_keyid=registered.keyid,
        approval_signature="",
    )
    auth = sign_authorization(unsigned, signer)
    try:
        auth.verify_approval(registered)
    except SignatureError as exc:
        raise SignatureError(
            f"the approval of {number} was not signed with {approver}'s registered key",
            hint="pass the approver's own private key with --key (or register the right key)",
        ) from exc
    _record_approval(row, auth, "approver", now)
    if row.state == "authorize":
        row.state = "scheduled"
    session.add(row)
    emit(session, "change.approved", row, now, approved_by=approver)
    return ChangeRequest.from_row(row)


def sign_authorization(unsigned: ChangeAuthorization, signer: Signer) -> ChangeAuthorization:
    """``unsigned`` with ``signer``'s signature over its statement (and its key id)."""
    signature = signer.sign(canonical_bytes(unsigned.statement()))
    fields = unsigned.to_dict() | {
        "approval_keyid": signature.keyid,
        "approval_signature": signature.signature,
    }
    return ChangeAuthorization.from_dict(fields)


def _record_approval(
    row: HubChangeRequest, auth: ChangeAuthorization, source: str, now: dt.datetime
) -> None:
    row.approval = "approved"
    row.approved_by, row.approved_at = auth.approved_by, auth.approved_at
    row.approval_keyid, row.approval_signature = auth.approval_keyid, auth.approval_signature
    row.approval_source, row.rejection_reason = source, ""
    row.updated = utc_iso(now)


def reject(
    session: Session, now: dt.datetime, number: str, approver: str, reason: str
) -> ChangeRequest:
    """Records ``approver``'s rejection; the change goes back to New (retroactive: stays).

    Raises:
        NotFoundError, UsageError, ConflictError: as :func:`approve`, or no reason.
    """
    row = get_row(session, number)
    _decidable(row, "rejected")
    approver_key(session, approver)
    check_approver(row, approver, "reject")
    row.approval, row.rejection_reason = "rejected", check_text("reason", reason, required=True)
    row.approved_by, row.approved_at = approver, utc_iso(now)
    row.approval_keyid = row.approval_signature = row.approval_source = ""
    if row.state == "authorize":
        row.state = "new"
    row.updated = utc_iso(now)
    session.add(row)
    emit(session, "change.rejected", row, now, rejected_by=approver, reason=row.rejection_reason)
    return ChangeRequest.from_row(row)
