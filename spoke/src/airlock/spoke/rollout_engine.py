"""The rollout engine's tick: one step of every rollout at the site, from the database alone.

:func:`step` reads what the hub assigns, what is staged or revoked, what the
nodes report and measure, and moves each rollout on, in this order:

1. revocation fast path — a revoked candidate or stable version leaves every
   node at once, whatever state its rollout is in (no bake, no approval);
2. new assignments — a rollout per (model, version, plan) the Director
   assigns, never twice (no flapping); a newer one supersedes the running one;
3. each running rollout — pending → ring 0; in a ring, one analysis per
   interval (:mod:`airlock.spoke.rollout_analysis`), rollback past the failure
   limit, promotion when the ring is healthy, baked and (if manual) approved;
4. every node's wishes (:func:`airlock.spoke.rollout_rings.sync_desired`).

All state lives in the database, so a restarted spoke carries on from any
state, and a second call with the same ``now`` changes nothing. :func:`tick`
wraps one step and the site director's signing in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, col, select

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import UsageError
from airlock.bundles.rollout import RolloutPlan, SiteLimits
from airlock.spoke.fleet_state import (
    FleetModel,
    Rollout,
    RolloutEvent,
    RolloutPlanRecord,
)
from airlock.spoke.home import SpokeHome
from airlock.spoke.rollout_analysis import FAILED, INCONCLUSIVE, analyse
from airlock.spoke.rollout_rings import (
    ACTIVE_STATES,
    active_node_ids,
    latest_reports,
    revoked_versions,
    ring_view,
    runs_version,
    sync_desired,
    version_key,
)
from airlock.spoke.state import DirectorAssignment, StagedModel

ENGINE_PRINCIPAL = "airlock-rollout-engine"
"""The audit principal of the engine's own decisions (rollback, promotion, revocation)."""


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


class _Step:
    """One step's context: the session, the time, the events so far."""

    def __init__(self, home: SpokeHome, session: Session, now: dt.datetime) -> None:
        self.home, self.session, self.now = home, session, now
        self.events: list[RolloutEvent] = []
        self.created: set[str] = set()
        """Rollouts created in this step: they start on the next one."""
        self.changed_nodes: list[str] = []
        """Nodes whose wishes (``NodeDesired``) this step changed."""

    def event(self, rollout: Rollout, kind: str, details: dict[str, Any]) -> None:
        self.events.append(add_event(self.session, rollout, kind, self.now, details))

    def decision(self, rollout: Rollout, kind: str, details: dict[str, Any]) -> None:
        """An event that changes a rollout's state: audited too."""
        self.event(rollout, kind, details)
        audit_decision(self.home, self.session, rollout, kind, self.now, details, ENGINE_PRINCIPAL)


def audit_decision(
    home: SpokeHome,
    session: Session,
    rollout: Rollout,
    kind: str,
    now: dt.datetime,
    details: dict[str, Any],
    principal: str,
) -> None:
    """Audits a rollout state change inside the step's transaction."""
    home.audit.record(
        f"spoke.rollout.{kind}",
        "success",
        object=rollout.id,
        details={"model": rollout.model, "version": rollout.version, **details},
        principal=principal,
        session=session,
        when=now,
    )


def step(home: SpokeHome, session: Session, now: dt.datetime) -> list[RolloutEvent]:
    """Moves every rollout of the site one step on (see the module docstring); never signs.

    Returns:
        The events this step recorded (none when nothing changed).

    Raises:
        UsageError: the spoke's ``[rollout]`` settings are malformed.
    """
    return _run_step(home, session, now).events


def _run_step(home: SpokeHome, session: Session, now: dt.datetime) -> _Step:
    limits = SiteLimits.from_config(home.config.get("rollout"))
    ctx = _Step(home, session, now)
    _revoke(ctx)
    _start_assigned(ctx, limits)
    running = session.exec(
        select(Rollout)
        .where(col(Rollout.state).in_(ACTIVE_STATES))
        .order_by(col(Rollout.created_at), col(Rollout.id))
    )
    for rollout in list(running):
        if rollout.id not in ctx.created:
            _advance(ctx, rollout)
    session.flush()
    ctx.changed_nodes = sync_desired(session, now)
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
    from airlock.spoke import site_director

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


# --- 1. revocation ------------------------------------------------------------------------------


def _revoke(ctx: _Step) -> None:
    revoked = revoked_versions(ctx.session)
    if not revoked:
        return
    rollouts = ctx.session.exec(
        select(Rollout).where(col(Rollout.state).in_((*ACTIVE_STATES, "complete")))
    )
    for rollout in list(rollouts):
        reason = revoked.get((rollout.model, rollout.version))
        if reason is None:
            continue
        was = rollout.state
        rollout.state, rollout.reason = "revoked", f"revoked by the hub: {reason}"
        set_extra(rollout, awaiting_promotion=False)
        ctx.decision(rollout, "revoked", {"reason": reason, "was": was})
    for fleet in list(ctx.session.exec(select(FleetModel))):
        if fleet.stable_version is None or (fleet.model, fleet.stable_version) not in revoked:
            continue
        good = [
            r.version
            for r in ctx.session.exec(
                select(Rollout).where(Rollout.model == fleet.model, Rollout.state == "complete")
            )
            if (r.model, r.version) not in revoked
        ]
        bad, fleet.stable_version = fleet.stable_version, max(good, key=version_key, default=None)
        fleet.updated_at = utc_iso(ctx.now)
        ctx.session.add(fleet)
        for rollout in _running(ctx.session, fleet.model):
            rollout.from_version = fleet.stable_version
            ctx.decision(
                rollout,
                "stable-revoked",
                {
                    "revoked": bad,
                    "reason": revoked[(fleet.model, bad)],
                    "from_version": fleet.stable_version,
                },
            )


def _running(session: Session, model: str) -> list[Rollout]:
    return list(
        session.exec(
            select(Rollout).where(Rollout.model == model, col(Rollout.state).in_(ACTIVE_STATES))
        )
    )


# --- 2. new assignments -------------------------------------------------------------------------


def plan_of(record: RolloutPlanRecord | None) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """The signed plan of an assigned version, its SHA-256 and dependencies (defaults if none)."""
    plan = dict(record.plan) if record is not None and record.plan else RolloutPlan().to_dict()
    digest = record.plan_sha256 if record is not None and record.plan_sha256 else ""
    if not digest:
        digest = hashlib.sha256(canonical_bytes(plan)).hexdigest()
    depends = [dict(d) for d in record.depends] if record is not None else []
    return plan, digest, depends


def _assigned(session: Session) -> dict[str, str]:
    """Model family → the version the Director assigns (the newest, if several)."""
    versions: dict[str, set[str]] = {}
    for row in session.exec(select(DirectorAssignment)):
        versions.setdefault(row.model, set()).add(row.version)
    return {model: max(found, key=version_key) for model, found in versions.items()}


def _start_assigned(ctx: _Step, limits: SiteLimits) -> None:
    session, revoked = ctx.session, revoked_versions(ctx.session)
    for model, version in sorted(_assigned(session).items()):
        record = session.get(RolloutPlanRecord, (model, version))
        plan_dict, digest, depends = plan_of(record)
        fleet = session.get(FleetModel, model)
        stable = fleet.stable_version if fleet is not None else None
        tried = any(
            r.extra.get("plan_sha256") == digest
            for r in session.exec(
                select(Rollout).where(Rollout.model == model, Rollout.version == version)
            )
        )
        startable = (
            not tried
            and version != stable
            and (model, version) not in revoked
            and session.get(StagedModel, (model, version)) is not None
        )
        try:
            plan = RolloutPlan.from_dict(plan_dict).slowed(limits)
        except UsageError:
            startable = False  # a malformed plan starts nothing (fail closed)
        for active in _running(session, model):
            same = active.version == version and active.extra.get("plan_sha256") == digest
            if same or (active.version == version and not startable):
                continue
            why = "superseded by" if startable else "the Director now assigns"
            active.state, active.reason = "aborted", f"{why} {model}@{version}"
            set_extra(active, awaiting_promotion=False)
            ctx.decision(active, "aborted", {"reason": active.reason, "by": version})
        if startable:
            _create(ctx, model, version, stable, plan, digest, depends, record)


def _create(
    ctx: _Step,
    model: str,
    version: str,
    stable: str | None,
    plan: RolloutPlan,
    digest: str,
    depends: list[dict[str, Any]],
    record: RolloutPlanRecord | None,
) -> None:
    session = ctx.session
    if session.get(FleetModel, model) is None:
        session.add(FleetModel(model=model, stable_version=None, updated_at=utc_iso(ctx.now)))
    size = 8
    while session.get(Rollout, f"{model}-{version}-{digest[:size]}") is not None:
        size += 4
    rollout = Rollout(
        id=f"{model}-{version}-{digest[:size]}",
        model=model,
        version=version,
        from_version=stable,
        plan=plan.to_dict(),
        state="pending",
        created_at=utc_iso(ctx.now),
        updated_at=utc_iso(ctx.now),
        bundle_id=record.bundle_id if record is not None else "",
        extra={"plan_sha256": digest, "depends": depends},
    )
    session.add(rollout)
    session.flush()
    ctx.created.add(rollout.id)
    ctx.decision(
        rollout,
        "created",
        {
            "from_version": stable,
            "plan_sha256": digest,
            "depends": depends,
            "rings": len(plan.rings),
        },
    )


# --- 3. running rollouts ------------------------------------------------------------------------


def may_start(rollout: Rollout, now: dt.datetime) -> bool:
    """Whether a pending rollout may enter its first ring now (issue 6 adds change windows)."""
    return rollout.state == "pending"


def _advance(ctx: _Step, rollout: Rollout) -> None:
    if rollout.state == "pending":
        if not may_start(rollout, ctx.now):
            return
        start_ring(rollout, 0, ctx.now)
        ctx.decision(rollout, "ring-started", _ring_details(rollout))
    if rollout.state != "ring":
        return
    plan = RolloutPlan.from_dict(rollout.plan)
    node_ids = active_node_ids(ctx.session)
    reports = latest_reports(ctx.session)
    view = ring_view(rollout, node_ids, reports)
    if view.waiting != rollout.extra.get("waiting", {}):
        set_extra(rollout, waiting=view.waiting)
        if view.waiting:
            ctx.event(rollout, "waiting-dependency", {"nodes": view.waiting})
    refused = {
        node: refusal.reason
        for node in view.members
        for refusal in (reports[node].refusals if node in reports else ())
        if (refusal.model, refusal.version) == (rollout.model, rollout.version)
    }
    if refused != rollout.extra.get("refused", {}):
        set_extra(rollout, refused=refused)
        if refused:
            ctx.event(rollout, "node-refused", {"nodes": refused})
    running = any(
        runs_version(reports.get(n), rollout.model, rollout.version) for n in view.eligible
    )
    due = ctx.now >= parse_utc(rollout.last_analysis_at) + dt.timedelta(
        seconds=plan.interval_seconds
    )
    if running and due and _analyse(ctx, rollout, plan):
        return
    gaps = promotion_gaps(rollout, ctx.now)
    ring = plan.rings[rollout.ring_index]
    if gaps:
        if rollout.extra.get("awaiting_promotion"):
            set_extra(rollout, awaiting_promotion=False)
    elif ring.approval == "manual":
        if not rollout.extra.get("awaiting_promotion"):
            set_extra(rollout, awaiting_promotion=True)
            ctx.event(rollout, "awaiting-promotion", _ring_details(rollout))
    else:
        ctx.events.extend(promote_ring(ctx.home, ctx.session, rollout, ctx.now, ENGINE_PRINCIPAL))


def _analyse(ctx: _Step, rollout: Rollout, plan: RolloutPlan) -> bool:
    """Runs one interval's analysis; True when it rolled the rollout back."""
    since, until = rollout.last_analysis_at, utc_iso(ctx.now)
    health = plan.health
    verdict = analyse(
        ctx.session, rollout.model, rollout.version, rollout.from_version, health, since, until
    )
    figures = {"since": since, "until": until, **verdict.to_dict()}
    rollout.last_analysis_at = until
    set_extra(rollout, last_analysis=figures)
    if verdict.outcome == INCONCLUSIVE:
        ctx.event(rollout, "inconclusive", figures)
        return False
    ring = plan.rings[rollout.ring_index].name
    if verdict.outcome == FAILED:
        rollout.failures += 1
        rollout.consecutive_successes = 0
        counters = {
            "ring": ring,
            "failures": rollout.failures,
            "failure_limit": health.failure_limit,
        }
        ctx.event(rollout, "analysis-failed", {**figures, **counters})
        if rollout.failures > health.failure_limit:
            rollout.state = "rolled-back"
            rollout.reason = "; ".join(verdict.breaches)
            set_extra(rollout, awaiting_promotion=False)
            ctx.decision(
                rollout,
                "rolled-back",
                {**figures, **counters, "reason": rollout.reason, "to": rollout.from_version},
            )
            return True
        return False
    rollout.consecutive_successes += 1
    ctx.event(
        rollout,
        "analysis-passed",
        {
            **figures,
            "ring": ring,
            "consecutive_successes": rollout.consecutive_successes,
            "needed": health.consecutive_successes,
        },
    )
    return False


def start_ring(rollout: Rollout, index: int, now: dt.datetime) -> None:
    """Puts ``rollout`` into ring ``index`` with fresh counters and clocks."""
    rollout.state = "ring"
    rollout.ring_index = index
    rollout.ring_started_at = rollout.last_analysis_at = utc_iso(now)
    rollout.consecutive_successes = rollout.failures = 0
    set_extra(rollout, awaiting_promotion=False, waiting={}, refused={})


def _ring_details(rollout: Rollout) -> dict[str, Any]:
    ring = RolloutPlan.from_dict(rollout.plan).rings[rollout.ring_index]
    return {"ring_index": rollout.ring_index, "ring": ring.name, "nodes": ring.nodes}


def promotion_gaps(rollout: Rollout, now: dt.datetime) -> list[str]:
    """What the current ring still lacks before promotion (empty: healthy and baked)."""
    plan = RolloutPlan.from_dict(rollout.plan)
    ring = plan.rings[rollout.ring_index]
    gaps = []
    baked = int((now - parse_utc(rollout.ring_started_at)).total_seconds())
    if baked < ring.bake_seconds:
        gaps.append(f"bake time: {baked} s of {ring.bake_seconds} s in ring {ring.name!r}")
    need = plan.health.consecutive_successes
    if rollout.consecutive_successes < need:
        gaps.append(f"consecutive successful analyses: {rollout.consecutive_successes} of {need}")
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
        kind, details = "promoted", {"from_ring": done, **_ring_details(rollout)}
    details["by"] = principal
    event = add_event(session, rollout, kind, now, details)
    audit_decision(home, session, rollout, kind, now, details, principal)
    return [event]
