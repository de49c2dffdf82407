"""The rollout engine's tick: one step of every rollout at the site, from the database alone.

:func:`step` reads what the hub assigns, what is staged or revoked, what the
nodes report and measure, and moves each rollout on, in this order:

1. revocation fast path — a revoked candidate or stable version leaves every
   node at once, whatever state its rollout is in (no bake, no approval, no
   change window: recorded against an emergency change;
   :mod:`airlock.spoke.rollout._revocation`);
2. new assignments — a rollout per (model, version, plan, change request)
   the Director assigns, never twice (no flapping); a newer one supersedes
   the running one; a new authorisation for the running plan is adopted;
3. each running rollout — pending → ring 0 inside its change window
   (:mod:`airlock.spoke.rollout._change`); in a ring, one analysis per
   interval (:mod:`airlock.spoke.rollout._interval`; a ring node that failed
   its health check on the candidate fails the interval), rollback past the
   failure limit (never waits for a window), promotion when the ring is healthy, baked,
   (if manual) approved and inside the window; a ring running when the window
   closes is paused, and still analysed for breaches only;
4. every node's wishes (:func:`airlock.spoke.rollout._rings.sync_desired`).

Every decision is audited and emits its CloudEvents in the same transaction
(:func:`airlock.spoke.rollout._decisions.audit_decision`); the
assignment step is :mod:`airlock.spoke.rollout._assign`.

All state lives in the database, so a restarted spoke carries on from any
state, and a second call with the same ``now`` changes nothing. :func:`tick`
wraps one step and the site director's signing in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, col, select

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.protocol import HEALTH_CHECK
from airlock.bundles.release import RolloutPlan, SiteLimits
from airlock.spoke.rollout._assign import start_assigned
from airlock.spoke.rollout._change import (
    authorization_of,
    change_number,
    change_required,
    start_blocker,
    window_gap,
)
from airlock.spoke.rollout._decisions import (
    ENGINE_PRINCIPAL,
    StepContext,
    change_details,
    event_dict,
    promote_ring,
    promotion_gaps,
    resume_from_pause,
    ring_details,
    set_extra,
    start_ring,
)
from airlock.spoke.rollout._interval import analyse_interval
from airlock.spoke.rollout._revocation import revoke_step
from airlock.spoke.rollout._rings import (
    ACTIVE_STATES,
    latest_reports,
    live_node_ids,
    ring_view,
    runs_version,
    stale_after_seconds,
    sync_desired,
)
from airlock.spoke.rollout._waits import note_wait
from airlock.spoke.site._fleet_tables import Rollout, RolloutEvent
from airlock.spoke.site._home import SpokeHome

__all__ = ["TickMemo", "TickReport", "may_start", "step", "tick"]


@dataclass(frozen=True)
class TickReport:
    """What one :func:`tick` did."""

    events: tuple[dict[str, Any], ...]
    published: tuple[str, ...]
    refreshed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "events": list(self.events),
            "published": list(self.published),
            "refreshed": list(self.refreshed),
        }


def step(home: SpokeHome, session: Session, now: dt.datetime) -> list[RolloutEvent]:
    """Moves every rollout of the site one step on (see the module docstring); never signs.

    Returns:
        The events this step recorded (none when nothing changed).

    Raises:
        UsageError: the spoke's ``[rollout]`` settings are malformed.
    """
    return _run_step(home, session, now).events


def _run_step(home: SpokeHome, session: Session, now: dt.datetime) -> StepContext:
    limits = SiteLimits.from_config(home.config.get("rollout"))
    ctx = StepContext(home, session, now, change_required(home))
    ctx.stale_after = stale_after_seconds(home.config)
    ctx.live_nodes = live_node_ids(session, now, ctx.stale_after)
    revoke_step(ctx)
    start_assigned(ctx, limits)
    running = session.exec(
        select(Rollout)
        .where(col(Rollout.state).in_(ACTIVE_STATES))
        .order_by(col(Rollout.created_at), col(Rollout.id))
    )
    for rollout in list(running):
        if rollout.id not in ctx.created:
            _advance(ctx, rollout)
    session.flush()
    ctx.changed_nodes = sync_desired(session, now, stale_after=ctx.stale_after)
    return ctx


@dataclass
class TickMemo:
    """What a long-running service remembers between ticks, to skip work that is not due.

    Signing is checked only when the step changed some node's wishes (or on the
    first tick of the process); expiring metadata is renewed at most every
    ``refresh_seconds``. Without a memo, every tick does both.
    """

    refresh_seconds: float = 60.0
    published_once: bool = False
    last_refresh: dt.datetime | None = None


def tick(
    home: SpokeHome, signer: Signer, now: dt.datetime, memo: TickMemo | None = None
) -> TickReport:
    """One transaction: :func:`step`, then the site director signs what changed or expires."""
    from airlock.spoke.director import _director as site_director

    with session_scope(home.engine) as session:
        ctx = _run_step(home, session, now)
        published: list[str] = []
        if memo is None or ctx.changed_nodes or not memo.published_once:
            published = site_director.publish_pending(home, session, signer, now)
        refreshed: list[str] = []
        due = memo is None or memo.last_refresh is None
        if memo is not None and memo.last_refresh is not None:
            due = (now - memo.last_refresh).total_seconds() >= memo.refresh_seconds
        if due:
            refreshed = site_director.refresh_expiring(home, session, signer, now)
        report = TickReport(
            tuple(event_dict(e) for e in ctx.events), tuple(published), tuple(refreshed)
        )
    if memo is not None:  # only once the transaction committed
        memo.published_once = True
        if due:
            memo.last_refresh = now
    return report


# --- 3. running rollouts (2. is in airlock.spoke.rollout._assign) ---------------------------


def may_start(rollout: Rollout, now: dt.datetime, *, change_required: bool = False) -> bool:
    """Whether a pending rollout may enter its first ring now.

    Only inside its change window, when it has an authorisation; never
    without one when the site sets ``[change] required``
    (:func:`airlock.spoke.rollout._change.start_blocker` says why not).
    """
    return (
        rollout.state == "pending" and start_blocker(rollout, now, required=change_required) is None
    )


def _advance(ctx: StepContext, rollout: Rollout) -> None:
    if rollout.state == "pending":
        if not may_start(rollout, ctx.now, change_required=ctx.required):
            _hold_start(ctx, rollout)
            return
        start_ring(rollout, 0, ctx.now)
        ctx.decision(rollout, "ring-started", {**ring_details(rollout), **change_details(rollout)})
    if rollout.state == "ring":
        gap = window_gap(rollout, ctx.now)
        if gap is not None:
            _pause_for_window(ctx, rollout, gap)
    if rollout.state == "paused" and rollout.extra.get("paused_by_window"):
        _watch_paused(ctx, rollout)
        return
    if rollout.state != "ring":
        return
    plan = RolloutPlan.from_dict(rollout.plan)
    reports = latest_reports(ctx.session)
    view = ring_view(rollout, ctx.live_nodes, reports)
    if view.waiting != rollout.extra.get("waiting", {}):
        set_extra(rollout, waiting=view.waiting)
        if view.waiting:
            ctx.event(rollout, "waiting-dependency", {"nodes": view.waiting})
    refusals = [
        (node, refusal)
        for node in view.members
        for refusal in (reports[node].refusals if node in reports else ())
        if (refusal.model, refusal.version) == (rollout.model, rollout.version)
    ]
    refused = {node: refusal.reason for node, refusal in refusals}
    if refused != rollout.extra.get("refused", {}):
        set_extra(rollout, refused=refused)
        if refused:
            ctx.event(rollout, "node-refused", {"nodes": refused})
    unhealthy = {node: r.reason for node, r in refusals if r.kind == HEALTH_CHECK}
    running = [n for n in view.eligible if runs_version(reports.get(n), *_ref(rollout))]
    due = ctx.now >= parse_utc(rollout.last_analysis_at) + dt.timedelta(
        seconds=plan.interval_seconds
    )
    if (running or unhealthy) and due and analyse_interval(ctx, rollout, plan, unhealthy=unhealthy):
        return
    note_wait(ctx, rollout, view, running, ctx.stale_after)
    gaps = promotion_gaps(rollout, ctx.now)
    ring = plan.rings[rollout.ring_index]
    if gaps:
        if rollout.extra.get("awaiting_promotion"):
            set_extra(rollout, awaiting_promotion=False)
    elif ring.approval == "manual":
        if not rollout.extra.get("awaiting_promotion"):
            set_extra(rollout, awaiting_promotion=True)
            ctx.event(rollout, "awaiting-promotion", ring_details(rollout))
    else:
        ctx.events.extend(promote_ring(ctx.home, ctx.session, rollout, ctx.now, ENGINE_PRINCIPAL))


def _ref(rollout: Rollout) -> tuple[str, str]:
    return rollout.model, rollout.version


def _hold_start(ctx: StepContext, rollout: Rollout) -> None:
    """Says once (per reason) why a pending rollout does not start."""
    why = start_blocker(rollout, ctx.now, required=ctx.required)
    if why is None or rollout.extra.get("start_held") == why:
        return
    set_extra(rollout, start_held=why)
    details = {"reason": why, **change_details(rollout)}
    if ctx.required and not change_number(rollout):
        ctx.decision(rollout, "change-required", details, outcome="refused")
    else:
        ctx.event(rollout, "waiting-change-window", details)


def _pause_for_window(ctx: StepContext, rollout: Rollout, why: str) -> None:
    """The change window closed while a ring runs: pause; nodes keep what they have."""
    rollout.paused_from, rollout.state, rollout.reason = rollout.state, "paused", why
    number = change_number(rollout)
    set_extra(
        rollout,
        paused_at=utc_iso(ctx.now),
        pause_reason=why,
        paused_by_window=number,
        awaiting_promotion=False,
    )
    ctx.decision(
        rollout, "paused", {"reason": why, "by": ENGINE_PRINCIPAL, **change_details(rollout)}
    )


def _watch_paused(ctx: StepContext, rollout: Rollout) -> None:
    """A rollout paused by its window: resume under a new open window, else watch for breaches.

    The authorisation whose window closed never resumes it; a newer one
    adopted from a later bundle does, once ``now`` is inside its window (as
    does the current one, when the pause came before its window opened).
    Meanwhile the ring is analysed for breaches only (successes do not
    count): an automatic rollback never waits for a window.
    """
    number = change_number(rollout)
    auth = authorization_of(rollout)
    paused_at = parse_utc(str(rollout.extra.get("paused_at") or utc_iso(ctx.now)))
    new_window = number != rollout.extra.get("paused_by_window") or (
        auth is not None and paused_at < auth.start  # paused before its window opened
    )
    authorised = auth is not None or not ctx.required
    if authorised and new_window and window_gap(rollout, ctx.now) is None:
        seconds = resume_from_pause(rollout, ctx.now)
        ctx.decision(
            rollout,
            "resumed",
            {"paused_seconds": seconds, "by": ENGINE_PRINCIPAL, **change_details(rollout)},
        )
        return
    if rollout.paused_from != "ring":
        return
    plan = RolloutPlan.from_dict(rollout.plan)
    reports = latest_reports(ctx.session)
    view = ring_view(rollout, ctx.live_nodes, reports)
    running = any(
        runs_version(reports.get(n), rollout.model, rollout.version) for n in view.eligible
    )
    due = ctx.now >= parse_utc(rollout.last_analysis_at) + dt.timedelta(
        seconds=plan.interval_seconds
    )
    if running and due:
        analyse_interval(ctx, rollout, plan, breaches_only=True)
