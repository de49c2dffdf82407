"""The engine's second step: a rollout for what the Director assigns, never twice.

For each model family the newest assigned version gets a rollout under its
signed plan and change authorisation (``RolloutPlanRecord``). The
no-flapping key is (model, version, plan SHA-256, change number): a
rolled-back or aborted version starts again only under a new plan or a new
change request. A newer assignment supersedes (aborts) the running rollout; a
new authorisation for the running version and plan is adopted by it (its
window then governs; a rollout its old window paused resumes inside the new one).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlmodel import Session, select

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import UsageError
from airlock.bundles.release import RolloutPlan, SiteLimits
from airlock.spoke.rollout._change import change_number, describe_change
from airlock.spoke.rollout._decisions import StepContext, running_rollouts, set_extra
from airlock.spoke.rollout._rings import revoked_versions, version_key
from airlock.spoke.site._fleet_tables import FleetModel, Rollout, RolloutPlanRecord
from airlock.spoke.site._tables import DirectorAssignment, StagedModel


def plan_of(record: RolloutPlanRecord | None) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """The signed plan of an assigned version, its SHA-256 and dependencies (defaults if none)."""
    plan = dict(record.plan) if record is not None and record.plan else RolloutPlan().to_dict()
    digest = record.plan_sha256 if record is not None and record.plan_sha256 else ""
    if not digest:
        digest = hashlib.sha256(canonical_bytes(plan)).hexdigest()
    depends = [dict(d) for d in record.depends] if record is not None else []
    return plan, digest, depends


def change_of(record: RolloutPlanRecord | None) -> dict[str, Any]:
    """The change authorisation signed with an assigned version's plan ({} when none)."""
    return dict(record.change) if record is not None and record.change else {}


def assigned_versions(session: Session) -> dict[str, str]:
    """Model family → the version the Director assigns (the newest, if several)."""
    versions: dict[str, set[str]] = {}
    for row in session.exec(select(DirectorAssignment)):
        versions.setdefault(row.model, set()).add(row.version)
    return {model: max(found, key=version_key) for model, found in versions.items()}


def start_assigned(ctx: StepContext, limits: SiteLimits) -> None:
    """Creates, supersedes or updates rollouts from the Director's assignments."""
    session, revoked = ctx.session, revoked_versions(ctx.session)
    for model, version in sorted(assigned_versions(session).items()):
        record = session.get(RolloutPlanRecord, (model, version))
        plan_dict, digest, depends = plan_of(record)
        change = change_of(record)
        number = str(change.get("number", ""))
        fleet = session.get(FleetModel, model)
        stable = fleet.stable_version if fleet is not None else None
        tried = any(  # the no-flapping key: (model, version, plan, change request)
            r.extra.get("plan_sha256") == digest and change_number(r) == number
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
        for active in running_rollouts(session, model):
            same = active.version == version and active.extra.get("plan_sha256") == digest
            if same:
                startable = False
                if active.extra.get("change", {}) != change:
                    _adopt_change(ctx, active, change)
                continue
            if active.version == version and not startable:
                continue
            why = "superseded by" if startable else "the Director now assigns"
            active.state, active.reason = "aborted", f"{why} {model}@{version}"
            set_extra(active, awaiting_promotion=False)
            ctx.decision(active, "aborted", {"reason": active.reason, "by": version})
        if startable:
            _create(ctx, model, version, stable, plan, digest, depends, record)


def _adopt_change(ctx: StepContext, rollout: Rollout, change: dict[str, Any]) -> None:
    """A newer bundle authorises the running plan under another (or a rescheduled) change."""
    previous = change_number(rollout)
    set_extra(rollout, change=change, start_held="")
    ctx.decision(
        rollout, "change-updated", {**describe_change(change), "previous_change_request": previous}
    )


def _create(
    ctx: StepContext,
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
        extra={"plan_sha256": digest, "depends": depends, "change": change_of(record)},
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
            **describe_change(change_of(record)),
        },
    )
