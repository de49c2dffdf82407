"""Importing change requests from a ServiceNow JSON export (``airlock hub change import``).

For organisations whose ITSM is the source of truth: the change requests
are made and approved in ServiceNow, exported as JSON, and imported here,
where ``hub assign --change`` gates rollouts on them like on local ones.

The input is the Table API's shape (``GET /api/now/table/change_request``)
or the JSONv2 export's (``{"records": [...]}``)::

    {"result": [{"number": "CHG0030001", "sys_id": "…", "type": "normal",
                 "state": "-1", "approval": "approved",
                 "start_date": "2026-11-23 14:00:00", "end_date": "2026-11-23 18:00:00",
                 "requested_by": {"display_value": "Beth Anglin", "value": "…"},
                 "assignment_group": "ML Platform", "short_description": "…",
                 "justification": "…", "approved_by": "Cab Approver",
                 "approval_set": "2026-11-22 09:12:00",
                 "u_airlock_covers": "plant-7:iris@3, plant-9:iris@3"}]}

* ``state`` is the numeric value (-5 New, -4 Assess, -3 Authorize,
  -2 Scheduled, -1 Implement, 0 Review, 3 Closed, 4 Canceled) or its label.
* Reference fields (``requested_by``, ``assignment_group``, ``approved_by``)
  may be strings or ``{"display_value", "value", "link"}`` objects: the
  display value is used. Date fields use the ``value`` (the Table API's
  raw values are UTC; export with ``sysparm_display_value=false`` or ``all``).
* ``change_request`` has no approver field (approvals live in
  ``sysapproval_approver``): add ``approved_by`` (e.g. a dot-walked field)
  to the export, else the approval is recorded as by ``servicenow``.
  ``approval_set`` (else ``sys_updated_on``) is the approval time.
* The rollout plans a change covers come from the custom field
  ``u_airlock_covers`` (``SITE:NAME@VERSION``, comma- or space-separated).

The ITSM's approval is taken as given, and recorded with
``approval_source = "servicenow"``: the hub signs the approval statement
with its online Director targets key on the ITSM's behalf (the sites
already trust that key through the Director root; no approver key exists
at the hub for a ServiceNow approver). The approver may still not be the
requester. Any malformed record refuses the whole file, naming the record:
nothing is imported.

An imported change keeps ServiceNow's number. Change requests made at the
hub are numbered in their own space (``ACHG…``, :func:`airlock.hub.changes._changes.next_number`),
so importing ``CHG0030002`` never collides with one made here, and a record
whose number is in that local space is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import (
    ConflictError,
    MediaError,
    MissingFileError,
    UsageError,
)
from airlock.bundles.release import CHANGE_TYPES, ChangeAuthorization
from airlock.hub.changes import _approvals as approvals
from airlock.hub.changes import _changes as changes
from airlock.hub.changes import _records as change_records
from airlock.hub.changes._records import CoveredPlan
from airlock.hub.store._tables import HubChangeRequest

STATE_CODES = {
    "-5": "new",
    "-4": "assess",
    "-3": "authorize",
    "-2": "scheduled",
    "-1": "implement",
    "0": "review",
    "3": "closed",
    "4": "canceled",
}
APPROVAL_ALIASES = {"not yet requested": "not requested", "cancelled": "rejected"}
COVERS_FIELD = "u_airlock_covers"
DEFAULT_APPROVER = "servicenow"
MAX_RECORDS = 10_000


@dataclass(frozen=True)
class ServiceNowChange:
    """One change request of an export, checked and normalised."""

    number: str
    sys_id: str
    type: str
    state: str
    approval: str
    approved_by: str
    approved_at: str
    requested_by: str
    assignment_group: str
    short_description: str
    justification: str
    planned_start: str
    planned_end: str
    covers: tuple[CoveredPlan, ...]


@dataclass(frozen=True)
class ImportResult:
    """What ``change import`` did, by change number."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready form (also the audit entry's details)."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
        }


def read_export(path: Path) -> list[ServiceNowChange]:
    """Reads and checks every record of a ServiceNow export file.

    Raises:
        NotFoundError: no such file.
        MediaError: not JSON, or not an export.
        UsageError: a record is malformed (the message names it).
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise MissingFileError(f"ServiceNow export {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path} is not JSON ({exc})") from None
    records = data.get("result", data.get("records")) if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise MediaError(
            f"{path} holds no change requests",
            hint='expected a ServiceNow export: {"result": [{"number": "CHG…", …}, …]}',
        )
    if len(records) > MAX_RECORDS:
        raise MediaError(f"{path} holds more than {MAX_RECORDS} change requests")
    parsed = [parse_record(i, r) for i, r in enumerate(records, start=1)]
    numbers = [c.number for c in parsed]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise UsageError(f"{path} lists change {duplicates[0]} more than once")
    return parsed


def parse_record(index: int, record: Any) -> ServiceNowChange:
    """Checks and normalises record number ``index`` (1-based) of an export.

    Raises:
        UsageError: a field is missing or invalid (the message names the record).
    """
    if not isinstance(record, Mapping):
        raise UsageError(f"record {index} of the export is not an object")
    number = _text(record, "number")
    where = f"record {index} ({number or 'no number'})"
    try:
        return _parse(record, number)
    except UsageError as exc:
        raise UsageError(
            f"{where}: {exc.message}", hint=exc.hint or "fix the export; nothing was imported"
        ) from None


def _parse(record: Mapping[str, Any], number: str) -> ServiceNowChange:
    if not change_records.NUMBER_RE.match(number):
        raise UsageError(f"number {number!r} is not a change number (e.g. CHG0030001)")
    change_type = _text(record, "type").lower()
    if change_type not in CHANGE_TYPES:
        raise UsageError(f"type {change_type!r} is not one of {', '.join(CHANGE_TYPES)}")
    raw_state = _text(record, "state")
    state = STATE_CODES.get(raw_state, raw_state.lower())
    if state not in STATE_CODES.values():
        raise UsageError(f"state {raw_state!r} is not a change_request state")
    approval = _text(record, "approval").lower() or "not requested"
    approval = APPROVAL_ALIASES.get(approval, approval)
    if approval not in change_records.APPROVALS:
        raise UsageError(
            f"approval {approval!r} is not one of {', '.join(change_records.APPROVALS)}"
        )
    requested_by = _text(record, "requested_by")
    if not requested_by:
        raise UsageError("it has no requested_by")
    start, end = _date(record, "start_date"), _date(record, "end_date")
    if start or end or approval == "approved":
        change_records.check_window(number, start, end)
    approved_by = _text(record, "approved_by") or DEFAULT_APPROVER
    if approval == "approved" and approved_by.casefold() == requested_by.casefold():
        raise UsageError(
            f"it was approved by its requester {requested_by}",
            hint="the approver may not be the requester",
        )
    approved_at = _date(record, "approval_set") or _date(record, "sys_updated_on")
    if approval == "approved" and not approved_at:
        raise UsageError("it is approved but has no approval_set or sys_updated_on time")
    return ServiceNowChange(
        number=number,
        sys_id=_text(record, "sys_id"),
        type=change_type,
        state=state,
        approval=approval,
        approved_by=approved_by if approval == "approved" else "",
        approved_at=approved_at if approval == "approved" else "",
        requested_by=change_records.check_text("requester", requested_by, required=True),
        assignment_group=change_records.check_text(
            "assignment group", _text(record, "assignment_group")
        ),
        short_description=change_records.check_text(
            "short description", _text(record, "short_description"), required=True
        ),
        justification=change_records.check_text("justification", _text(record, "justification")),
        planned_start=start,
        planned_end=end,
        covers=tuple(sorted({CoveredPlan.parse(c) for c in _covers(record)})),
    )


def _value(record: Mapping[str, Any], key: str, prefer: str) -> str:
    value = record.get(key)
    if isinstance(value, Mapping):
        order = ("display_value", "value") if prefer == "display" else ("value", "display_value")
        value = next((value[k] for k in order if value.get(k) not in (None, "")), "")
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise UsageError(f"field {key} is not text")
    return str(value).strip()


def _text(record: Mapping[str, Any], key: str) -> str:
    return _value(record, key, "display")


def _date(record: Mapping[str, Any], key: str) -> str:
    """A ServiceNow date-time (``YYYY-MM-DD HH:MM:SS``, UTC) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    text = _value(record, key, "value")
    if not text:
        return ""
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return utc_iso(dt.datetime.strptime(text, form).replace(tzinfo=dt.UTC))
        except ValueError:
            continue
    raise UsageError(f"{key} {text!r} is not a date-time (YYYY-MM-DD HH:MM:SS, UTC)")


def _covers(record: Mapping[str, Any]) -> list[str]:
    value = record.get(COVERS_FIELD)
    if isinstance(value, list):
        return [str(v) for v in value]
    text = _text(record, COVERS_FIELD)
    return [part for part in re.split(r"[\s,;]+", text) if part]


def import_changes(
    session: Session, now: dt.datetime, records: list[ServiceNowChange], signer: Signer
) -> ImportResult:
    """Creates or updates every record (one transaction); emits their events.

    An approved record gets an approval signed by ``signer`` (the hub's
    Director targets key) on the ITSM's behalf.

    Raises:
        ConflictError: a number belongs to a change request made at this hub, or is
            in this hub's own number space (``ACHG…``).
    """
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for change in records:
        row = session.get(HubChangeRequest, change.number)
        if row is not None and row.source != "servicenow":
            raise ConflictError(
                f"change {change.number} was made at this hub, not imported from ServiceNow",
                hint="nothing was imported; remove or renumber that record in the export",
            )
        if change_records.is_local_number(change.number):
            raise ConflictError(
                f"change {change.number} has this hub's own prefix {change_records.NUMBER_PREFIX}, "
                "which is kept for change requests made at this hub",
                hint="nothing was imported; ServiceNow numbers must not start with "
                f"{change_records.NUMBER_PREFIX} (fix the export or the ServiceNow number prefix)",
            )
        fields = _row_fields(change, signer)
        if row is None:
            row = HubChangeRequest(**fields, created=utc_iso(now), updated=utc_iso(now))
            session.add(row)
            changes.emit(session, "change.created", row, now, approval_source="servicenow")
            created.append(change.number)
            continue
        before = row.model_dump()
        if all(before[k] == v for k, v in fields.items()):
            unchanged.append(change.number)
            continue
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated = utc_iso(now)
        session.add(row)
        if before["state"] != row.state:
            changes.emit(session, "change.state", row, now, previous_state=before["state"])
        if before["approval"] != row.approval and row.approval in ("approved", "rejected"):
            changes.emit(session, f"change.{row.approval}", row, now, approval_source="servicenow")
        updated.append(change.number)
    return ImportResult(tuple(created), tuple(updated), tuple(unchanged))


def _row_fields(change: ServiceNowChange, signer: Signer) -> dict[str, Any]:
    """The row's fields; an approval is signed anew (Ed25519: the same bytes sign the same)."""
    fields: dict[str, Any] = {
        "number": change.number,
        "type": change.type,
        "state": change.state,
        "short_description": change.short_description,
        "justification": change.justification,
        "requested_by": change.requested_by,
        "assignment_group": change.assignment_group,
        "approvers": [],
        "approval": change.approval,
        "approved_by": change.approved_by,
        "approved_at": change.approved_at,
        "approval_keyid": "",
        "approval_signature": "",
        "approval_source": "",
        "rejection_reason": "",
        "planned_start": change.planned_start,
        "planned_end": change.planned_end,
        "covers": [c.to_dict() for c in change.covers],
        "source": "servicenow",
        "sys_id": change.sys_id,
    }
    if change.approval == "approved":
        auth = ChangeAuthorization(
            number=change.number,
            type=change.type,
            window_start=change.planned_start,
            window_end=change.planned_end,
            approved_by=change.approved_by,
            approved_at=change.approved_at,
            approval_keyid="",
            approval_signature="",
        )
        signed = approvals.sign_authorization(auth, signer)
        fields |= {
            "approval_keyid": signed.approval_keyid,
            "approval_signature": signed.approval_signature,
            "approval_source": "servicenow",
        }
    return fields
