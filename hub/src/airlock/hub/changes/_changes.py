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
(:func:`~airlock.hub.changes._approvals.approve`) is done in Authorize and moves
the change to Scheduled; rejecting
(:func:`~airlock.hub.changes._approvals.reject`) sends it back to New, as
ServiceNow does. An emergency change recorded after the fact (:func:`record_emergency_change`,
used by revocations) starts in Review and is approved there retroactively.

An approval is an Ed25519 signature by the approver's registered key
(:func:`~airlock.hub.changes._approvals.add_approver`) over
:meth:`ChangeAuthorization.statement`; the approver may never be the
requester. :func:`gate` is what ``hub assign --change`` checks before the
authorisation is signed into the site's Director targets. Every function
here runs inside the caller's hub operation (one transaction with its audit
entry) and emits its CloudEvent into the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles import events as events
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.release import CHANGE_STATES, CHANGE_TYPES, ChangeAuthorization
from airlock.hub.changes._records import (
    EMERGENCY_WINDOW,
    FINAL_STATES,
    LOCAL_SOURCE,
    NEEDS_APPROVAL,
    NUMBER_PREFIX,
    ApproverInfo,
    ChangeRequest,
    CoveredPlan,
    check_text,
    check_window,
    hub_source,
    is_local_number,
)
from airlock.hub.store._tables import HubChangeApprover, HubChangeRequest


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
