"""Change requests' records: numbers, states, windows and texts checked, and the views
(:class:`ChangeRequest`, :class:`CoveredPlan`, :class:`ApproverInfo`) the hub returns.

See :mod:`airlock.hub.changes._changes` for the model and its rules.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from dataclasses import dataclass
from typing import Any

from airlock.bundles import events as events
from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import UsageError
from airlock.bundles.release import ChangeAuthorization
from airlock.hub.store._tables import HubChangeRequest

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
