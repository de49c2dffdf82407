"""Change authorisations: the part of an approved change request that travels to a site.

Change requests live at the hub (:mod:`airlock.hub.changes._changes`), modelled on
ServiceNow's: a number (``CHG0030001``), a type (normal / standard /
emergency), a state (New → Assess → Authorize → Scheduled → Implement →
Review → Closed, or Canceled), an approval, and a planned window. A rollout
plan is exported only under an approved change in Implement, and then the
hub signs a :class:`ChangeAuthorization` into the site's Director targets
next to the plan (``custom.airlock.change`` of the version's primary file).
The spoke starts or advances a ring only inside the window
(:meth:`ChangeAuthorization.in_window`) and pauses when it closes; automatic
rollbacks and revocations never wait for a window.

The approval is signed by the approver's own Ed25519 key over
:meth:`ChangeAuthorization.statement` (canonical JSON), so an auditor can check
who approved what with nothing but the approver's public key; the Director
signature makes the whole record authentic at the site.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key, Signature

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import SignatureError, UsageError

CHANGE_TYPES = ("normal", "standard", "emergency")
CHANGE_STATES = (
    "new",
    "assess",
    "authorize",
    "scheduled",
    "implement",
    "review",
    "closed",
    "canceled",
)
CHANGE_KEY = "change"
"""Key of the authorisation in ``custom.airlock`` of a Director target."""


@dataclass(frozen=True)
class ChangeAuthorization:
    """An approved change request's number, window and approval, as a site sees it."""

    number: str
    type: str
    window_start: str
    window_end: str
    approved_by: str
    approved_at: str
    approval_keyid: str
    approval_signature: str

    def __post_init__(self) -> None:
        if not self.number:
            raise UsageError("a change authorisation needs the change request's number")
        if self.type not in CHANGE_TYPES:
            raise UsageError(f"change type {self.type!r} is not one of {CHANGE_TYPES}")
        try:
            start, end = parse_utc(self.window_start), parse_utc(self.window_end)
            parse_utc(self.approved_at)
        except ValueError:
            raise UsageError(
                f"change {self.number}: window and approval times must be UTC "
                "(YYYY-MM-DDTHH:MM:SSZ)"
            ) from None
        if end <= start:
            raise UsageError(f"change {self.number}: the window ends before it starts")

    @property
    def start(self) -> dt.datetime:
        """The window's start."""
        return parse_utc(self.window_start)

    @property
    def end(self) -> dt.datetime:
        """The window's end."""
        return parse_utc(self.window_end)

    def in_window(self, now: dt.datetime) -> bool:
        """Whether ``now`` is inside the approved window (start inclusive, end exclusive)."""
        return self.start <= now < self.end

    def statement(self) -> dict[str, Any]:
        """What the approver signs: everything but the signature itself."""
        return {
            "type": "airlock-change-approval-v1",
            "number": self.number,
            "change_type": self.type,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
        }

    def verify_approval(self, approver_key: Key) -> None:
        """Checks the approver's signature over :meth:`statement`.

        Raises:
            SignatureError: another key, or the signature does not verify.
        """
        if approver_key.keyid != self.approval_keyid:
            raise SignatureError(
                f"change {self.number} was approved with key {self.approval_keyid[:12]}…, "
                f"not {approver_key.keyid[:12]}…"
            )
        try:
            approver_key.verify_signature(
                Signature(self.approval_keyid, self.approval_signature),
                canonical_bytes(self.statement()),
            )
        except Exception:
            raise SignatureError(
                f"the approval of change {self.number} does not verify",
                hint="the change record was altered after it was approved",
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``custom.airlock.change``)."""
        return {
            "number": self.number,
            "type": self.type,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "approval_keyid": self.approval_keyid,
            "approval_signature": self.approval_signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeAuthorization:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise UsageError(f"malformed change authorisation: missing {exc}") from None


def window_text(auth: ChangeAuthorization) -> str:
    """``CHG0030001 (2026-11-23T14:00:00Z → 2026-11-23T18:00:00Z)`` for messages."""
    return f"{auth.number} ({utc_iso(auth.start)} → {utc_iso(auth.end)})"
