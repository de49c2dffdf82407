"""The hub's change-request API: one audited operation per function.

``airlock hub change …`` (:mod:`airlock.hub.cli._changes`) calls
:func:`create_change`, :func:`approve_change`, :func:`move_change` and the
rest. The model and the rules live in :mod:`airlock.hub.changes._changes` (and
:mod:`airlock.hub.changes._servicenow` for imports); this module wraps each in
the hub's operation, so that every change is one transaction with its audit
entry (``change_request`` set) and its CloudEvent, or nothing at all with an
audited refusal.

:func:`authorize_assignment` is what :func:`~airlock.hub.export._assignments.assign`
asks before signing a rollout plan: under ``[change] required = true`` (env
``AIRLOCK_CHANGE_REQUIRED``) an assignment without a change request is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key, SecretsHandler, Signer
from sqlmodel import Session

from airlock.bundles.audit import default_principal
from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import UsageError
from airlock.bundles.keys import load_encrypted_key
from airlock.hub.changes import _approvals as approvals
from airlock.hub.changes import _changes as changes
from airlock.hub.changes import _servicenow as changes_servicenow
from airlock.hub.changes._records import ApproverInfo, ChangeRequest, CoveredPlan
from airlock.hub.changes._servicenow import ImportResult
from airlock.hub.context._context import HubContext, online_signer
from airlock.hub.context._operation import operation
from airlock.hub.repos import _signing as signing
from airlock.hub.sites._tenants import read_public_key

REQUIRED_SETTING = "change.required"
TRUE_WORDS = ("1", "true", "yes", "on")


def change_required(config: HomeConfig) -> bool:
    """Whether assignments need a change request (``[change] required``; default false)."""
    value = config.get(REQUIRED_SETTING, False)
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def authorize_assignment(
    ctx: HubContext, session: Session, change: str | None, site: str, name: str, version: str
) -> dict[str, Any] | None:
    """The change authorisation to sign next to a plan (None: assigned without one).

    Raises:
        UsageError: no change while the hub requires one, or the change does
            not allow this rollout (:func:`airlock.hub.changes._changes.gate`).
    """
    if change is None:
        if change_required(ctx.config):
            raise UsageError(
                f"this hub assigns rollout plans only under a change request "
                f"({site}:{name}@{version} has none)",
                hint="pass --change CHG… (approved, in implement, covering SITE:NAME@VERSION)",
            )
        return None
    return changes.gate(session, change, site, name, version, ctx.clock.now()).to_dict()


def create_change(
    ctx: HubContext,
    *,
    short_description: str,
    planned_start: str,
    planned_end: str,
    type: str = "normal",
    justification: str = "",
    requested_by: str | None = None,
    assignment_group: str = "",
    approvers: Sequence[str] = (),
    covers: Iterable[str | CoveredPlan] = (),
) -> ChangeRequest:
    """Creates a change request in New, numbered ``ACHG`` + 7 digits (never ServiceNow's).

    ``requested_by`` defaults to the acting principal; ``covers`` lists the
    rollout plans (``SITE:NAME@VERSION``) that may be assigned under it.

    Raises:
        UsageError: bad type, text, window or plan reference.
    """
    with operation(ctx, "hub.change.create", "change request") as op:
        op.details = {"short_description": short_description}
        plans = [c if isinstance(c, CoveredPlan) else CoveredPlan.parse(c) for c in covers]
        change = changes.create(
            op.session,
            ctx.clock.now(),
            type=type,
            short_description=short_description,
            justification=justification,
            requested_by=requested_by or default_principal(),
            assignment_group=assignment_group,
            approvers=approvers,
            planned_start=planned_start,
            planned_end=planned_end,
            covers=plans,
        )
        op.details = change.to_dict() | {"change_request": change.number}
        return change


def add_change_approver(ctx: HubContext, name: str, key: Key | Path) -> ApproverInfo:
    """Registers approver ``name``'s Ed25519 public key (a ``Key`` or a PEM/JSON file).

    Raises:
        UsageError: not an Ed25519 key, or the file holds none.
        ConflictError: the name or the key is already registered.
    """
    with operation(ctx, "hub.change.approver.add", name) as op:
        op.details = {"approver": name}
        public = key if isinstance(key, Key) else read_public_key(Path(key))
        info = approvals.add_approver(
            op.session, ctx.clock.now(), name, public, default_principal()
        )
        op.details = info.to_dict()
        return info


def approve_change(
    ctx: HubContext,
    number: str,
    approver: str,
    key: Signer | Path,
    secrets: SecretsHandler | None = None,
) -> ChangeRequest:
    """Records ``approver``'s approval, signed with their key (Authorize → Scheduled).

    Args:
        number: The change request.
        approver: A registered approver (not the requester).
        key: The approver's signer, or their encrypted Ed25519 PEM key file.
        secrets: Asked for the key file's ``passphrase``.

    Raises:
        NotFoundError, UsageError, ConflictError, SignatureError: see
            :func:`airlock.hub.changes._changes.approve`.
        SecretError: the key file's passphrase is missing or wrong.
    """
    with operation(ctx, "hub.change.approve", number, change_request=number) as op:
        op.details = {"change_request": number, "approver": approver}
        if isinstance(key, Signer):
            signer = key
        else:
            registered = approvals.approver_key(op.session, approver)
            signer = load_encrypted_key(Path(key), registered, secrets)
        change = approvals.approve(op.session, ctx.clock.now(), number, approver, signer)
        op.details |= _approval_details(change)
        return change


def reject_change(ctx: HubContext, number: str, approver: str, reason: str) -> ChangeRequest:
    """Records ``approver``'s rejection (the change goes back to New).

    Raises:
        NotFoundError, UsageError, ConflictError: see :func:`airlock.hub.changes._changes.reject`.
    """
    with operation(ctx, "hub.change.reject", number, change_request=number) as op:
        op.details = {"change_request": number, "approver": approver, "reason": reason}
        change = approvals.reject(op.session, ctx.clock.now(), number, approver, reason)
        op.details |= {"state": change.state, "approval": change.approval}
        return change


def move_change(ctx: HubContext, number: str, to: str) -> ChangeRequest:
    """Moves a change forward (or cancels it); see :func:`airlock.hub.changes._changes.move`."""
    with operation(ctx, "hub.change.move", number, change_request=number) as op:
        op.details = {"change_request": number, "to": to}
        before = changes.get_row(op.session, number).state
        change = changes.move(op.session, ctx.clock.now(), number, to)
        op.details |= {"from": before, "state": change.state}
        return change


def import_servicenow(ctx: HubContext, path: Path) -> ImportResult:
    """Imports a ServiceNow change-request export, all or nothing.

    See :mod:`airlock.hub.changes._servicenow`. Approved records are signed
    with the hub's Director targets key on the ITSM's behalf.

    Raises:
        NotFoundError, MediaError, UsageError: the file or a record is bad.
        ConflictError: a number belongs to a change request made here.
    """
    with operation(ctx, "hub.change.import", str(path)) as op:
        op.details = {"file": str(path), "approval_source": "servicenow"}
        records = changes_servicenow.read_export(Path(path))
        signer = online_signer(ctx, signing.DIRECTOR_TARGETS)
        result = changes_servicenow.import_changes(op.session, ctx.clock.now(), records, signer)
        op.details |= result.to_dict()
        touched = [*result.created, *result.updated]
        if len(touched) == 1:
            op.details["change_request"] = touched[0]
        if not touched:
            op.outcome = "unchanged"
        return result


def get_change(ctx: HubContext, number: str) -> ChangeRequest:
    """One change request.

    Raises:
        NotFoundError: there is none.
    """
    with Session(ctx.engine) as session:
        return ChangeRequest.from_row(changes.get_row(session, number))


def list_change_requests(ctx: HubContext) -> list[ChangeRequest]:
    """Every change request, by number."""
    with Session(ctx.engine) as session:
        return changes.list_changes(session)


def list_change_approvers(ctx: HubContext) -> list[ApproverInfo]:
    """Every registered approver."""
    with Session(ctx.engine) as session:
        return changes.list_approvers(session)


def _approval_details(change: ChangeRequest) -> dict[str, str]:
    return {
        "state": change.state,
        "approval": change.approval,
        "approved_at": change.approved_at,
        "approval_keyid": change.approval_keyid,
        "approval_source": change.approval_source,
    }
