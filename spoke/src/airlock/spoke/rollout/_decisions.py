"""Rollout state changes shared by the engine and the site admin's actions.

Every change of a rollout's state goes through here: the rollout's history
(:func:`add_event`), the audit entry and the CloudEvents of a decision
(:func:`audit_decision`, one transaction with the change), entering a ring
(:func:`start_ring`), promotion (:func:`promotion_gaps`, :func:`promote_ring`)
and resuming after a pause (:func:`resume_from_pause`). :class:`StepContext`
carries one engine step's session, time and events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.release import RolloutPlan
from airlock.spoke.rollout._change import (
    change_number,
    describe_change,
    emit_rollout_events,
    open_emergency,
    window_gap,
)
from airlock.spoke.rollout._rings import ACTIVE_STATES, DEFAULT_STALE_AFTER
from airlock.spoke.site._fleet_tables import FleetModel, Rollout, RolloutEvent
from airlock.spoke.site._home import SpokeHome

ENGINE_PRINCIPAL = "airlock-rollout-engine"
"""The audit principal of the engine's own decisions (rollback, promotion, revocation)."""


def event_dict(event: RolloutEvent) -> dict[str, Any]:
    """JSON-ready form of one rollout event."""
    return {
        "rollout_id": event.rollout_id,
        "time": event.time,
        "kind": event.kind,
        "details": dict(event.details),
    }


def add_event(
    session: Session, rollout: Rollout, kind: str, now: dt.datetime, details: dict[str, Any]
) -> RolloutEvent:
    """Appends one event to a rollout's history (and stamps the rollout as updated)."""
    event = RolloutEvent(rollout_id=rollout.id, time=utc_iso(now), kind=kind, details=details)
    rollout.updated_at = utc_iso(now)
    session.add(rollout)
    session.add(event)
    return event


def set_extra(rollout: Rollout, **values: Any) -> None:
    """Updates the rollout's ``extra`` JSON (as a new object, so the change is saved)."""
    rollout.extra = {**rollout.extra, **values}


class StepContext:
    """One engine step's context: the session, the time, the events so far."""

    def __init__(
        self, home: SpokeHome, session: Session, now: dt.datetime, required: bool = False
    ) -> None:
        self.home, self.session, self.now = home, session, now
        self.required = required
        """The site's ``[change] required`` setting."""
        self.events: list[RolloutEvent] = []
        self.created: set[str] = set()
        """Rollouts created in this step: they start on the next one."""
        self.changed_nodes: list[str] = []
        """Nodes whose wishes (``NodeDesired``) this step changed."""
        self.stale_after = DEFAULT_STALE_AFTER
        """The site's ``[rollout] node_stale_after``, in seconds."""
        self.live_nodes: list[str] = []
        """The active nodes heard from within ``stale_after``: rings are chosen among them."""

    def event(self, rollout: Rollout, kind: str, details: dict[str, Any]) -> None:
        """An event in the rollout's history (not a state change: not audited)."""
        self.events.append(add_event(self.session, rollout, kind, self.now, details))

    def decision(
        self, rollout: Rollout, kind: str, details: dict[str, Any], outcome: str = "success"
    ) -> None:
        """An event that changes a rollout's state: audited, and its CloudEvents emitted."""
        self.event(rollout, kind, details)
        audit_decision(
            self.home,
            self.session,
            rollout,
            kind,
            self.now,
            details,
            ENGINE_PRINCIPAL,
            outcome=outcome,
        )

    def emergency(self, rollout: Rollout, cause: str, reason: str) -> str:
        """Opens an emergency change for an action that does not wait; returns its number."""
        return open_emergency(
            self.home, self.session, rollout, cause, reason, self.now, ENGINE_PRINCIPAL
        )


def audit_decision(
    home: SpokeHome,
    session: Session,
    rollout: Rollout,
    kind: str,
    now: dt.datetime,
    details: dict[str, Any],
    principal: str,
    *,
    outcome: str = "success",
) -> None:
    """Audits a rollout state change and emits its events, inside the caller's transaction.

    The audit entry's ``change_request`` is ``details["change_request"]`` when
    given (an emergency change), else the change the rollout runs under.
    """
    change = str(details.get("change_request") or change_number(rollout))
    home.audit.record(
        f"spoke.rollout.{kind}",
        outcome,
        object=rollout.id,
        details={"model": rollout.model, "version": rollout.version, **details},
        principal=principal,
        change_request=change,
        rollout_id=rollout.id,
        session=session,
        when=now,
    )
    emit_rollout_events(home, session, rollout, kind, now, details, change)


def running_rollouts(session: Session, model: str) -> list[Rollout]:
    """The family's active rollouts (at most one, in practice)."""
    return list(
        session.exec(
            select(Rollout).where(Rollout.model == model, col(Rollout.state).in_(ACTIVE_STATES))
        )
    )


def change_details(rollout: Rollout) -> dict[str, Any]:
    """The change fields of a rollout's decisions (:func:`describe_change`)."""
    return describe_change(dict(rollout.extra.get("change") or {}))


def start_ring(rollout: Rollout, index: int, now: dt.datetime) -> None:
    """Puts ``rollout`` into ring ``index`` with fresh counters and clocks."""
    rollout.state = "ring"
    rollout.ring_index = index
    rollout.ring_started_at = rollout.last_analysis_at = utc_iso(now)
    rollout.consecutive_successes = rollout.failures = 0
    set_extra(rollout, awaiting_promotion=False, waiting={}, refused={}, waiting_for={})


def ring_details(rollout: Rollout) -> dict[str, Any]:
    """The current ring of a rollout: index, name, node spec."""
    ring = RolloutPlan.from_dict(rollout.plan).rings[rollout.ring_index]
    return {"ring_index": rollout.ring_index, "ring": ring.name, "nodes": ring.nodes}


def promotion_gaps(rollout: Rollout, now: dt.datetime) -> list[str]:
    """What the current ring still lacks before promotion (empty: healthy, baked, in window)."""
    plan = RolloutPlan.from_dict(rollout.plan)
    ring = plan.rings[rollout.ring_index]
    gaps = []
    baked = int((now - parse_utc(rollout.ring_started_at)).total_seconds())
    if baked < ring.bake_seconds:
        gaps.append(f"bake time: {baked} s of {ring.bake_seconds} s in ring {ring.name!r}")
    need = plan.health.consecutive_successes
    if rollout.consecutive_successes < need:
        gaps.append(f"consecutive successful analyses: {rollout.consecutive_successes} of {need}")
    window = window_gap(rollout, now)
    if window is not None:
        gaps.append(f"an open change window: {window}")
    return gaps


def promote_ring(
    home: SpokeHome, session: Session, rollout: Rollout, now: dt.datetime, principal: str
) -> list[RolloutEvent]:
    """Moves a healthy rollout to its next ring, or completes it after the last one."""
    plan = RolloutPlan.from_dict(rollout.plan)
    done = plan.rings[rollout.ring_index].name
    if rollout.ring_index + 1 >= len(plan.rings):
        rollout.state = "complete"
        set_extra(rollout, awaiting_promotion=False)
        fleet = session.get(FleetModel, rollout.model) or FleetModel(model=rollout.model)
        fleet.stable_version, fleet.updated_at = rollout.version, utc_iso(now)
        session.add(fleet)
        kind, details = "complete", {"ring": done, "stable_version": rollout.version}
    else:
        start_ring(rollout, rollout.ring_index + 1, now)
        kind, details = "promoted", {"from_ring": done, **ring_details(rollout)}
    details["by"] = principal
    event = add_event(session, rollout, kind, now, details)
    audit_decision(home, session, rollout, kind, now, details, principal)
    return [event]


def resume_from_pause(rollout: Rollout, now: dt.datetime) -> int:
    """Puts a paused rollout back where it was; bake time does not count the pause.

    Returns:
        How long it was paused, in seconds.
    """
    paused_at = parse_utc(str(rollout.extra.get("paused_at") or utc_iso(now)))
    pause = max(now - paused_at, dt.timedelta(0))
    rollout.state, rollout.paused_from = rollout.paused_from or "pending", ""
    if rollout.state == "ring":
        rollout.ring_started_at = utc_iso(parse_utc(rollout.ring_started_at) + pause)
        rollout.last_analysis_at = utc_iso(now)  # metrics from the pause are not judged
    if rollout.extra.get("paused_by_window"):
        rollout.reason = ""
    set_extra(rollout, paused_at="", pause_reason="", paused_by_window="")
    return int(pause.total_seconds())
