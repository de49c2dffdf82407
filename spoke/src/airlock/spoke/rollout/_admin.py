"""The site admin's rollout actions: pause, resume, abort, promote, and the read-only views.

Every action is one transaction: the rollout's new state, its event, the
nodes' new wishes and an audit entry (action ``spoke.rollout.<verb>``, the
operator as principal). An action the rollout's state does not allow changes
nothing, is audited with outcome ``refused``, and raises a
:class:`~airlock.bundles.errors.UsageError` that says why. A site admin can
only slow a plan down or stop it: ``promote`` is allowed only once the
current ring is healthy and baked as the plan requires, and — like ``resume``
of a rollout that was in a ring — only inside the rollout's change window
when it runs under a change request. State changes emit their CloudEvents
(``rollout.paused``, ``rollout.resumed``, ``rollout.aborted``, and the
promotion's) in the same transaction; audit entries carry the rollout's
change request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.audit import failure_details
from airlock.bundles.clock import utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.release import RolloutPlan
from airlock.spoke.rollout._change import change_number, emit_rollout_events, window_gap
from airlock.spoke.rollout._decisions import (
    add_event,
    event_dict,
    promote_ring,
    promotion_gaps,
    resume_from_pause,
    set_extra,
)
from airlock.spoke.rollout._rings import (
    ACTIVE_STATES,
    DEFAULT_STALE_AFTER,
    active_node_ids,
    last_seen,
    live_node_ids,
    ring_nodes,
    stale_after_seconds,
    sync_desired,
)
from airlock.spoke.site._fleet_tables import FleetModel, Rollout, RolloutEvent
from airlock.spoke.site._home import SpokeHome

Action = Callable[[Session, Rollout], dict[str, Any]]
EVENT_KIND = {"pause": "paused", "resume": "resumed", "abort": "aborted"}
"""Operator verbs whose events :func:`_act` emits (``promote`` emits through the engine)."""


def _act(
    home: SpokeHome,
    verb: str,
    rollout_id: str,
    principal: str,
    now: dt.datetime,
    request: dict[str, Any],
    action: Action,
) -> dict[str, Any]:
    """Runs one operator action in a transaction; audits it, refusals included."""
    try:
        with session_scope(home.engine) as session:
            rollout = session.get(Rollout, rollout_id)
            if rollout is None:
                raise NotFoundError(
                    f"no rollout {rollout_id!r} at this site",
                    hint="list them with `airlock spoke rollout list`",
                )
            if rollout.state not in ACTIVE_STATES:
                raise UsageError(
                    f"rollout {rollout_id} is {rollout.state}: it cannot be changed any more",
                    hint="a finished rollout stays as it is; a new plan starts a new rollout",
                )
            before = rollout.state
            change = change_number(rollout)
            details = {**request, **action(session, rollout)}
            session.flush()
            sync_desired(session, now, stale_after=stale_after_seconds(home.config))
            home.audit.record(
                f"spoke.rollout.{verb}",
                "success",
                object=rollout_id,
                details={"from_state": before, "state": rollout.state, **details},
                principal=principal,
                change_request=change,
                rollout_id=rollout_id,
                session=session,
                when=now,
            )
            if verb in EVENT_KIND:
                emitted = {**details, "by": principal, "from_state": before}
                emit_rollout_events(home, session, rollout, EVENT_KIND[verb], now, emitted, change)
            return summary(session, rollout)
    except UsageError as exc:
        home.audit.record(
            f"spoke.rollout.{verb}",
            "refused",
            object=rollout_id,
            details={**request, **failure_details(exc)},
            principal=principal,
            rollout_id=rollout_id,
            when=now,
        )
        raise


def pause(
    home: SpokeHome, rollout_id: str, reason: str, principal: str, now: dt.datetime
) -> dict[str, Any]:
    """Pauses a pending or ringed rollout: the engine leaves it alone, nodes keep what they have.

    Raises:
        NotFoundError: no such rollout.
        UsageError: already paused or finished.
    """

    def action(session: Session, rollout: Rollout) -> dict[str, Any]:
        if rollout.state == "paused":
            raise UsageError(
                f"rollout {rollout.id} is already paused",
                hint="resume it with `airlock spoke rollout resume`",
            )
        rollout.paused_from, rollout.state = rollout.state, "paused"
        set_extra(rollout, paused_at=utc_iso(now), pause_reason=reason)
        add_event(session, rollout, "paused", now, {"reason": reason, "by": principal})
        return {}

    return _act(home, "pause", rollout_id, principal, now, {"reason": reason}, action)


def resume(home: SpokeHome, rollout_id: str, principal: str, now: dt.datetime) -> dict[str, Any]:
    """Resumes a paused rollout where it was; bake time does not count the pause.

    A rollout that was in a ring and runs under a change request resumes only
    inside that change's window (a rollout the closing window paused needs a
    new authorisation from the hub, which resumes it by itself).

    Raises:
        NotFoundError: no such rollout.
        UsageError: not paused, or outside its change window.
    """

    def action(session: Session, rollout: Rollout) -> dict[str, Any]:
        if rollout.state != "paused":
            raise UsageError(
                f"rollout {rollout.id} is not paused (it is {rollout.state})",
                hint="only a paused rollout can be resumed",
            )
        closed = window_gap(rollout, now)
        if closed is not None and rollout.paused_from == "ring":
            raise UsageError(
                f"rollout {rollout.id} cannot resume: {closed}",
                hint="a ring advances only inside an approved change window; ask the hub "
                "for a new change authorisation (a new bundle), which resumes it in its window",
            )
        seconds = resume_from_pause(rollout, now)
        add_event(session, rollout, "resumed", now, {"paused_seconds": seconds, "by": principal})
        return {"paused_seconds": seconds}

    return _act(home, "resume", rollout_id, principal, now, {}, action)


def abort(
    home: SpokeHome, rollout_id: str, reason: str, principal: str, now: dt.datetime
) -> dict[str, Any]:
    """Stops a rollout for good: every node goes back to the stable version.

    Raises:
        NotFoundError: no such rollout.
        UsageError: already finished.
    """

    def action(session: Session, rollout: Rollout) -> dict[str, Any]:
        rollout.state, rollout.reason = "aborted", f"aborted by {principal}: {reason}"
        set_extra(rollout, awaiting_promotion=False)
        details = {"reason": reason, "by": principal, "to": rollout.from_version}
        add_event(session, rollout, "aborted", now, details)
        return {"to": rollout.from_version}

    return _act(home, "abort", rollout_id, principal, now, {"reason": reason}, action)


def promote(home: SpokeHome, rollout_id: str, principal: str, now: dt.datetime) -> dict[str, Any]:
    """Promotes a ring that is healthy and baked as the plan requires (manual approval).

    Raises:
        NotFoundError: no such rollout.
        UsageError: paused, pending, or the ring still lacks bake time or successes.
    """

    def action(session: Session, rollout: Rollout) -> dict[str, Any]:
        if rollout.state != "ring":
            raise UsageError(
                f"rollout {rollout.id} is {rollout.state}, not in a ring",
                hint="resume a paused rollout first"
                if rollout.state == "paused"
                else "wait for the rollout to enter its first ring",
            )
        gaps = promotion_gaps(rollout, now)
        if gaps:
            raise UsageError(
                f"rollout {rollout.id} cannot be promoted yet: still missing " + "; ".join(gaps),
                hint="the plan's bake time and consecutive successes must be reached first",
            )
        ring = RolloutPlan.from_dict(rollout.plan).rings[rollout.ring_index].name
        promote_ring(home, session, rollout, now, principal)
        return {"ring": ring}

    return _act(home, "promote", rollout_id, principal, now, {}, action)


def summary(session: Session, rollout: Rollout) -> dict[str, Any]:
    """One rollout's row in ``rollout list`` (and the head of ``rollout show``)."""
    plan = RolloutPlan.from_dict(rollout.plan)
    ring = plan.rings[rollout.ring_index]
    change = dict(rollout.extra.get("change") or {})
    return {
        "id": rollout.id,
        "model": rollout.model,
        "version": rollout.version,
        "from_version": rollout.from_version,
        "state": rollout.state,
        "paused_from": rollout.paused_from,
        "ring_index": rollout.ring_index,
        "ring": ring.name,
        "rings": len(plan.rings),
        "ring_started_at": rollout.ring_started_at,
        "consecutive_successes": rollout.consecutive_successes,
        "needed_successes": plan.health.consecutive_successes,
        "failures": rollout.failures,
        "failure_limit": plan.health.failure_limit,
        "awaiting_promotion": bool(rollout.extra.get("awaiting_promotion")),
        "reason": rollout.reason,
        "plan_sha256": rollout.extra.get("plan_sha256", ""),
        "change_request": change_number(rollout),
        "change_window": (f"{change['window_start']} → {change['window_end']}" if change else ""),
        "created_at": rollout.created_at,
        "updated_at": rollout.updated_at,
    }


def list_rollouts(session: Session) -> list[dict[str, Any]]:
    """Every rollout at the site, newest first."""
    rows = session.exec(
        select(Rollout).order_by(col(Rollout.created_at).desc(), col(Rollout.id).desc())
    )
    return [summary(session, rollout) for rollout in rows]


def show_rollout(
    session: Session,
    rollout_id: str,
    now: dt.datetime | None = None,
    stale_after: int = DEFAULT_STALE_AFTER,
) -> dict[str, Any]:
    """One rollout in full: rings with node counts, counters, last analysis, history.

    Ring node counts are over the enrolled nodes; with ``now``, ``stale_nodes``
    names those not heard from within ``stale_after`` seconds (node → last
    contact), which the engine leaves out of rings. ``waiting_for`` is what
    the ring waits for (see :mod:`airlock.spoke.rollout._waits`).

    Raises:
        NotFoundError: no such rollout.
    """
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFoundError(
            f"no rollout {rollout_id!r} at this site",
            hint="list them with `airlock spoke rollout list`",
        )
    plan = RolloutPlan.from_dict(rollout.plan)
    nodes = active_node_ids(session)
    live = nodes if now is None else live_node_ids(session, now, stale_after)
    seen = last_seen(session)
    rings = []
    for index, ring in enumerate(plan.rings):
        rings.append(
            {
                **ring.to_dict(),
                "node_count": len(ring_nodes(rollout, nodes, index)),
                "current": index == rollout.ring_index and rollout.state in ACTIVE_STATES,
            }
        )
    events = session.exec(
        select(RolloutEvent)
        .where(RolloutEvent.rollout_id == rollout_id)
        .order_by(col(RolloutEvent.id))
    )
    fleet = session.get(FleetModel, rollout.model)
    return {
        **summary(session, rollout),
        "enrolled_nodes": len(nodes),
        "stable_version": fleet.stable_version if fleet is not None else None,
        "interval_seconds": plan.interval_seconds,
        "health": plan.health.to_dict(),
        "ring_list": rings,
        "depends": rollout.extra.get("depends", []),
        "stale_nodes": {node: seen[node] for node in sorted(set(nodes) - set(live))},
        "waiting": rollout.extra.get("waiting", {}),
        "waiting_for": rollout.extra.get("waiting_for") or {},
        "last_analysis": rollout.extra.get("last_analysis"),
        "events": [event_dict(e) for e in events],
    }
