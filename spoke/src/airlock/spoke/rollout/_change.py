"""Change management at the spoke: change windows, emergency changes, and rollout events.

A rollout whose signed plan came with a
:class:`~airlock.bundles.release._change.ChangeAuthorization` (recorded at import in
``RolloutPlanRecord.change`` and copied into ``Rollout.extra["change"]``) may
start (pending → first ring) and be promoted only while ``now`` is inside the
approved window (:func:`start_blocker`, :func:`window_gap`). A ring that is
running when the window closes is paused by the engine (:func:`window_reason`
says why). A rollout without an authorisation runs as before, unless the
site sets ``[change] required = true`` (:func:`change_required`): then it is
held in ``pending``.

Automatic rollbacks and the revocation fast path never wait for a window.
Each is recorded against an **emergency change** created after the fact at
the spoke (:func:`open_emergency`): number
``EMERGENCY-<site>-<rollout id>-<n>`` (``n`` counts from 1 per rollout), an
audit entry ``spoke.change.emergency`` (type ``emergency``, state
``review``, the original change number in ``details.original_change_request``)
and a ``change.created`` event; the rollback or revocation entry then carries
``change_request=<emergency number>``.

:func:`emit_rollout_events` turns an engine or operator decision into
CloudEvents in the outbox, in the decision's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import UsageError
from airlock.bundles.events import emit, source_of
from airlock.bundles.release import ChangeAuthorization, RolloutPlan, window_text
from airlock.spoke.site._fleet_tables import Rollout
from airlock.spoke.site._home import SpokeHome

REQUIRED_SETTING = "change.required"
"""``[change] required`` in the spoke's ``airlock.toml`` (env ``AIRLOCK_CHANGE_REQUIRED``)."""
EMERGENCY_ACTION = "spoke.change.emergency"
"""The audit action of an emergency change created after the fact."""
EMERGENCY_PREFIX = "EMERGENCY"
ROLLBACK_CAUSE = "automatic-rollback"
REVOCATION_CAUSE = "revocation"

EVENTS_OF_KIND: dict[str, tuple[str, ...]] = {
    "ring-started": ("rollout.started", "rollout.ring-started"),
    "promoted": ("rollout.promoted", "rollout.ring-started"),
    "complete": ("rollout.complete",),
    "rolled-back": ("rollout.rolled-back",),
    "aborted": ("rollout.aborted",),
    "paused": ("rollout.paused",),
    "resumed": ("rollout.resumed",),
    "revoked": ("model.version-revoked-at-site",),
}
"""Rollout decision kind → the events it emits (other kinds emit none)."""


def change_required(home: SpokeHome) -> bool:
    """Whether this site refuses to start rollouts without a change authorisation.

    Raises:
        UsageError: the setting is not a boolean.
    """
    value = home.config.get(REQUIRED_SETTING, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise UsageError(
        f"[change] required must be true or false, not {value!r}",
        hint="fix airlock.toml (or AIRLOCK_CHANGE_REQUIRED)",
    )


def authorization_of(rollout: Rollout) -> ChangeAuthorization | None:
    """The change authorisation a rollout runs under (None: none)."""
    raw = rollout.extra.get("change") or {}
    return ChangeAuthorization.from_dict(raw) if raw else None


def change_number(rollout: Rollout) -> str:
    """The number of the change request a rollout runs under ("" when none)."""
    raw = rollout.extra.get("change") or {}
    return str(raw.get("number", ""))


def window_reason(auth: ChangeAuthorization, now: dt.datetime) -> str:
    """Why ``now`` is outside ``auth``'s window, in words (for reasons and events)."""
    if now < auth.start:
        return f"change window {auth.number} opens at {utc_iso(auth.start)}"
    return f"change window {auth.number} closed at {utc_iso(auth.end)}"


def window_gap(rollout: Rollout, now: dt.datetime) -> str | None:
    """Why the rollout may not start or advance a ring now because of its window (None: it may)."""
    auth = authorization_of(rollout)
    if auth is None or auth.in_window(now):
        return None
    return window_reason(auth, now)


def start_blocker(rollout: Rollout, now: dt.datetime, *, required: bool = False) -> str | None:
    """Why a pending rollout may not enter its first ring now (None: it may).

    Args:
        rollout: The rollout.
        now: The engine's time.
        required: The site's ``[change] required`` setting.
    """
    if required and authorization_of(rollout) is None:
        return (
            "this site requires an approved change request ([change] required) and the "
            "hub signed none for this plan"
        )
    return window_gap(rollout, now)


def describe_change(change: dict[str, Any]) -> dict[str, Any]:
    """The change fields a rollout's events and audit entries carry."""
    if not change:
        return {"change_request": ""}
    auth = ChangeAuthorization.from_dict(change)
    return {
        "change_request": auth.number,
        "change_type": auth.type,
        "window": window_text(auth),
    }


def open_emergency(
    home: SpokeHome,
    session: Session,
    rollout: Rollout,
    cause: str,
    reason: str,
    now: dt.datetime,
    principal: str,
) -> str:
    """Creates an emergency change after the fact for an action that could not wait.

    Writes the ``spoke.change.emergency`` audit entry and a ``change.created``
    event in the caller's transaction, remembers the number in the rollout's
    ``extra["emergency_changes"]``, and returns the number for the action's
    own audit entry.
    """
    made = list(rollout.extra.get("emergency_changes", []))
    number = f"{EMERGENCY_PREFIX}-{home.site_id}-{rollout.id}-{len(made) + 1}"
    rollout.extra = {**rollout.extra, "emergency_changes": [*made, number]}
    original = change_number(rollout)
    details = {
        "number": number,
        "type": "emergency",
        "state": "review",
        "created_after_the_fact": True,
        "cause": cause,
        "reason": reason,
        "original_change_request": original,
        "rollout_id": rollout.id,
        "model": rollout.model,
        "version": rollout.version,
        "site_id": home.site_id,
        "requested_by": principal,
        "assignment_group": f"site {home.site_id}",
        "planned_start": utc_iso(now),
        "planned_end": utc_iso(now),
    }
    home.audit.record(
        EMERGENCY_ACTION,
        "success",
        object=number,
        details=details,
        principal=principal,
        change_request=number,
        session=session,
        when=now,
    )
    emit(session, "change.created", source_of("spoke", home.site_id), number, details, now)
    return number


def emit_rollout_events(
    home: SpokeHome,
    session: Session,
    rollout: Rollout,
    kind: str,
    now: dt.datetime,
    details: dict[str, Any],
    change_request: str,
) -> list[dict[str, Any]]:
    """Emits the CloudEvents of one rollout decision (see :data:`EVENTS_OF_KIND`).

    Data: the decision's details (figures, reasons, rings) plus the rollout
    id, model, version, state, current ring and the change request it ran
    under (or the emergency change that recorded it).
    """
    names = EVENTS_OF_KIND.get(kind, ())
    if not names:
        return []
    rings = RolloutPlan.from_dict(rollout.plan).rings
    data = {
        "ring_index": rollout.ring_index,
        "ring": rings[rollout.ring_index].name,
        **details,
        "rollout_id": rollout.id,
        "model": rollout.model,
        "version": rollout.version,
        "state": rollout.state,
        "site_id": home.site_id,
        "decision": kind,
        "change_request": change_request,
    }
    source = source_of("spoke", home.site_id)
    subject = f"{rollout.model}@{rollout.version}"
    return [emit(session, name, source, subject, data, now) for name in names]
