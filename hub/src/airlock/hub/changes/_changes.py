"""Change requests at the hub, modelled on ServiceNow's ``change_request``.

A change request has a number: ``ACHG`` + 7 digits (``ACHG0000001``) when it
is made at this hub, or ServiceNow's own number (``CHG0030001``) when it is
imported. The two number spaces never meet: local numbers count only the
change requests made here, and an import refuses a number with the local
prefix. (Hubs of before this rule may hold local ``CHG…`` numbers; they stay
valid, and numbering goes on in the ``ACHG`` space.) A change request has a
type (normal / standard / emergency), a state, an approval, a planned window
(UTC), who requested it, the assignment group, the names of the people
allowed to approve it, and the rollout plans it covers (``SITE:NAME@VERSION``).

States follow ServiceNow's model: New → Assess → Authorize → Scheduled →
Implement → Review → Closed, or Canceled from any state before Closed.
:func:`move` only goes forward along that path (it may skip states), and
nothing goes past Authorize without an approval. Approving
(:func:`approve`) is done in Authorize and moves the change to Scheduled;
rejecting (:func:`reject`) sends it back to New, as ServiceNow does. An
emergency change recorded after the fact (:func:`record_emergency_change`,
used by revocations) starts in Review and is approved there retroactively.

An approval is an Ed25519 signature by the approver's registered key
(:func:`add_approver`) over :meth:`ChangeAuthorization.statement`; the
approver may never be the requester. :func:`gate` is what ``hub assign
--change`` checks before the authorisation is signed into the site's
Director targets. Every function here runs inside the caller's hub
operation (one transaction with its audit entry) and emits its CloudEvent
into the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key, Signer
from sqlmodel import Session, col, select

from airlock.bundles import events as events
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import ConflictError, NotFoundError, SignatureError, UsageError
from airlock.bundles.release import CHANGE_STATES, CHANGE_TYPES, ChangeAuthorization
from airlock.hub.store._tables import HubChangeApprover, HubChangeRequest

APPROVALS = ("not requested", "requested", "approved", "rejected")
NUMBER_PREFIX = "ACHG"
"""The prefix of change requests made at this hub (ServiceNow's own are ``CHG…``)."""
LOCAL_SOURCE = "airlock"
NUMBER_RE = re.compile(r"^[A-Z]{2,10}[0-9]{4,12}$")
COVER_RE = re.compile(r"^(?P<site>[^:@\s]+):(?P<model>[^:@\s]+)@(?P<version>[^:@\s]+)$")
NEEDS_APPROVAL = ("scheduled", "implement", "review", "closed")
"""States a change reaches only once approved."""
FINAL_STATES = ("closed", "canceled")
APPROVAL_SOURCES = ("approver", "servicenow")
MAX_TEXT = 4000
EMERGENCY_WINDOW = dt.timedelta(hours=1)
"""The window of an emergency change recorded after the fact: the hour from its action."""


@dataclass(frozen=True, order=True)
class CoveredPlan:
    """A rollout plan a change request covers: ``name@version`` at ``site``."""

    site: str
    model: str
    version: str

    @classmethod
    def parse(cls, text: str) -> CoveredPlan:
        """Parses ``SITE:NAME@VERSION``.

        Raises:
            UsageError: not in that form.
        """
        match = COVER_RE.match(text.strip())
        if match is None:
            raise UsageError(
                f"{text!r} is not a rollout plan reference",
                hint="write SITE:NAME@VERSION, e.g. plant-7:iris@3",
            )
        return cls(match["site"], match["model"], match["version"])

    def __str__(self) -> str:
        return f"{self.site}:{self.model}@{self.version}"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"site": self.site, "model": self.model, "version": self.version}


@dataclass(frozen=True)
class ChangeRequest:
    """A change request as users see it (``change show``/``list``, ``--json``)."""

    number: str
    type: str
    state: str
    short_description: str
    justification: str
    requested_by: str
    assignment_group: str
    approvers: tuple[str, ...]
    approval: str
    approved_by: str
    approved_at: str
    approval_keyid: str
    approval_signature: str
    approval_source: str
    rejection_reason: str
    planned_start: str
    planned_end: str
    covers: tuple[CoveredPlan, ...]
    source: str
    sys_id: str
    created: str
    updated: str

    @classmethod
    def from_row(cls, row: HubChangeRequest) -> ChangeRequest:
        """The view of a stored row."""
        fields = row.model_dump()
        fields["approvers"] = tuple(row.approvers)
        fields["covers"] = tuple(
            CoveredPlan(c["site"], c["model"], c["version"]) for c in row.covers
        )
        return cls(**{k: fields[k] for k in cls.__dataclass_fields__})

    def covers_plan(self, site: str, model: str, version: str) -> bool:
        """Whether the change lists ``model@version`` at ``site``."""
        return CoveredPlan(site, model, version) in self.covers

    def authorization(self) -> ChangeAuthorization:
        """What travels to a site (only for an approved change).

        Raises:
            UsageError: not approved, or the window is not valid.
        """
        if self.approval != "approved":
            raise UsageError(f"change {self.number} is not approved ({self.approval})")
        return ChangeAuthorization(
            number=self.number,
            type=self.type,
            window_start=self.planned_start,
            window_end=self.planned_end,
            approved_by=self.approved_by,
            approved_at=self.approved_at,
            approval_keyid=self.approval_keyid,
            approval_signature=self.approval_signature,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["approvers"] = list(self.approvers)
        data["covers"] = [str(c) for c in self.covers]
        return data


@dataclass(frozen=True)
class ApproverInfo:
    """A registered approver."""

    name: str
    keyid: str
    added: str
    added_by: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "keyid": self.keyid,
            "added": self.added,
            "added_by": self.added_by,
        }


def hub_source() -> str:
    """The CloudEvents ``source`` of this hub."""
    return events.source_of("hub", socket.gethostname())


def check_text(label: str, value: str, *, required: bool = False) -> str:
    """Whitespace-normalised free text of bounded length.

    Raises:
        UsageError: empty when required, or too long.
    """
    text = " ".join(str(value).split())
    if required and not text:
        raise UsageError(f"a change request needs a {label}")
    if len(text) > MAX_TEXT:
        raise UsageError(f"the {label} is longer than {MAX_TEXT} characters")
    return text


def check_window(number: str, start: str, end: str) -> None:
    """A planned window in UTC that ends after it starts.

    Raises:
        UsageError: not ``YYYY-MM-DDTHH:MM:SSZ``, or the end is not after the start.
    """
    try:
        begins, ends = parse_utc(start), parse_utc(end)
    except ValueError:
        raise UsageError(
            f"change {number}: the planned window must be UTC times",
            hint="write e.g. --start 2026-11-23T14:00:00Z --end 2026-11-23T18:00:00Z",
        ) from None
    if ends <= begins:
        raise UsageError(f"change {number}: the planned window ends before it starts")


def is_local_number(number: str) -> bool:
    """Whether ``number`` is in this hub's own number space (``ACHG`` + digits)."""
    digits = number.removeprefix(NUMBER_PREFIX)
    return number.startswith(NUMBER_PREFIX) and digits.isdigit()


def next_number(session: Session) -> str:
    """The next free ``ACHG`` + 7 digits number, after every change request made here.

    Imported (ServiceNow) change requests never count: their numbers are
    another space, so importing cannot move, or collide with, local numbering.
    """
    highest = 0
    query = select(HubChangeRequest.number).where(HubChangeRequest.source == LOCAL_SOURCE)
    for number in session.exec(query):
        if is_local_number(number):
            highest = max(highest, int(number.removeprefix(NUMBER_PREFIX)))
    return f"{NUMBER_PREFIX}{highest + 1:07d}"


def get_row(session: Session, number: str) -> HubChangeRequest:
    """The stored change request ``number``.

    Raises:
        NotFoundError: there is none.
    """
    row = session.get(HubChangeRequest, number)
    if row is None:
        raise NotFoundError(
            f"change request {number} does not exist",
            hint="list them with `airlock hub change list`",
        )
    return row


def list_changes(session: Session) -> list[ChangeRequest]:
    """Every change request, by number."""
    rows = session.exec(select(HubChangeRequest).order_by(col(HubChangeRequest.number)))
    return [ChangeRequest.from_row(r) for r in rows]


def list_approvers(session: Session) -> list[ApproverInfo]:
    """Every registered approver, by name."""
    rows = session.exec(select(HubChangeApprover).order_by(col(HubChangeApprover.name)))
    return [ApproverInfo(r.name, r.keyid, r.added, r.added_by) for r in rows]


def emit(
    session: Session, name: str, row: HubChangeRequest, now: dt.datetime, **extra: Any
) -> None:
    """Emits change event ``name`` for ``row`` in the caller's transaction."""
    data = {
        "number": row.number,
        "type": row.type,
        "state": row.state,
        "approval": row.approval,
        "requested_by": row.requested_by,
        "planned_start": row.planned_start,
        "planned_end": row.planned_end,
        "covers": [str(CoveredPlan(**c)) for c in row.covers],
        "source": row.source,
    } | extra
    events.emit(session, name, hub_source(), row.number, data, now)


def create(
    session: Session,
    now: dt.datetime,
    *,
    type: str,
    short_description: str,
    requested_by: str,
    planned_start: str,
    planned_end: str,
    justification: str = "",
    assignment_group: str = "",
    approvers: Sequence[str] = (),
    covers: Iterable[CoveredPlan] = (),
    state: str = "new",
    approval: str = "not requested",
) -> ChangeRequest:
    """Stores a new change request (numbered here) and emits ``change.created``.

    ``state`` and ``approval`` are for :func:`record_emergency_change`; a
    change request is otherwise created in New, its approval not requested.

    Raises:
        UsageError: unknown type, missing description or requester, bad window.
    """
    number = next_number(session)
    if type not in CHANGE_TYPES:
        raise UsageError(f"change type {type!r} is not one of {', '.join(CHANGE_TYPES)}")
    check_window(number, planned_start, planned_end)
    stamp = utc_iso(now)
    row = HubChangeRequest(
        number=number,
        type=type,
        state=state,
        short_description=check_text("short description", short_description, required=True),
        justification=check_text("justification", justification),
        requested_by=check_text("requester", requested_by, required=True),
        assignment_group=check_text("assignment group", assignment_group),
        approvers=sorted({check_text("approver", a, required=True) for a in approvers}),
        planned_start=planned_start,
        planned_end=planned_end,
        covers=[c.to_dict() for c in sorted(set(covers))],
        approval=approval,
        created=stamp,
        updated=stamp,
    )
    session.add(row)
    emit(session, "change.created", row, now)
    return ChangeRequest.from_row(row)


def record_emergency_change(
    session: Session,
    summary: str,
    principal: str,
    now: dt.datetime,
    covers: Iterable[CoveredPlan],
) -> str:
    """Records an emergency change after the fact (state Review); returns its number.

    For actions that never wait for a window (revocations, automatic
    rollbacks): the change is created in Review with its window the
    :data:`EMERGENCY_WINDOW` from ``now``, requested by ``principal``, its
    approval ``requested`` (a change approver approves it retroactively
    with ``airlock hub change approve``).
    """
    text = check_text("summary", summary, required=True)
    change = create(
        session,
        now,
        type="emergency",
        short_description=text[:160],
        justification=text,
        requested_by=principal,
        planned_start=utc_iso(now),
        planned_end=utc_iso(now + EMERGENCY_WINDOW),
        covers=covers,
        state="review",
        approval="requested",
    )
    return change.number


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


def move(session: Session, now: dt.datetime, number: str, to: str) -> ChangeRequest:
    """Moves a change forward along the state model (or cancels it).

    Raises:
        NotFoundError: no such change.
        UsageError: unknown state, a backward move, a move out of Closed or
            Canceled, or past Authorize without an approval.
    """
    row = get_row(session, number)
    to = to.strip().lower()
    if to not in CHANGE_STATES:
        raise UsageError(f"unknown change state {to!r}", hint=f"one of {', '.join(CHANGE_STATES)}")
    current = row.state
    if current in FINAL_STATES:
        raise UsageError(f"change {number} is {current}; it cannot move any more")
    if to != "canceled" and CHANGE_STATES.index(to) <= CHANGE_STATES.index(current):
        raise UsageError(
            f"change {number} cannot move from {current} to {to}: changes only move forward",
            hint="New → Assess → Authorize → Scheduled → Implement → Review → Closed, or Canceled",
        )
    if to in NEEDS_APPROVAL and row.approval != "approved":
        raise UsageError(
            f"change {number} cannot move to {to}: it is not approved ({row.approval})",
            hint=f"an approver runs `airlock hub change approve {number} --as NAME --key KEY`",
        )
    row.state, row.updated = to, utc_iso(now)
    if to == "authorize" and row.approval != "approved":
        row.approval = "requested"  # submitted (again, after a rejection)
    session.add(row)
    emit(session, "change.state", row, now, previous_state=current)
    return ChangeRequest.from_row(row)


def gate(
    session: Session, number: str, site: str, model: str, version: str, now: dt.datetime
) -> ChangeAuthorization:
    """What ``hub assign --change`` checks; returns the authorisation to sign for the site.

    Raises:
        NotFoundError: no such change.
        UsageError: not approved, not in Implement, not covering
            ``site:model@version``, or its window has ended.
    """
    change = ChangeRequest.from_row(get_row(session, number))
    if change.approval != "approved":
        raise UsageError(
            f"change {number} is not approved ({change.approval})",
            hint="a rollout plan is assigned only under an approved change request",
        )
    if change.state != "implement":
        raise UsageError(
            f"change {number} is in {change.state}, not implement",
            hint=f"`airlock hub change move {number} --to implement` when its work starts",
        )
    if not change.covers_plan(site, model, version):
        covered = ", ".join(str(c) for c in change.covers) or "nothing"
        raise UsageError(
            f"change {number} does not cover {site}:{model}@{version} (it covers {covered})",
            hint="create a change request with --covers SITE:NAME@VERSION for this rollout",
        )
    auth = change.authorization()
    if now >= auth.end:
        raise UsageError(
            f"the window of change {number} ended at {change.planned_end}",
            hint="a change past its window needs a new change request",
        )
    return auth
