"""Step 1 of the rollout engine: a revoked version leaves every node at once.

A revoked candidate or stable version leaves every node whatever state its
rollout is in: no bake, no approval, no change window. Each decision is recorded
against an emergency change (:data:`~airlock.spoke.rollout._change.REVOCATION_CAUSE`)
and audited with its events in the engine's transaction.
"""

from __future__ import annotations

from sqlmodel import col, select

from airlock.bundles.clock import utc_iso
from airlock.spoke.rollout._change import REVOCATION_CAUSE
from airlock.spoke.rollout._decisions import StepContext, running_rollouts, set_extra
from airlock.spoke.rollout._rings import ACTIVE_STATES, revoked_versions, version_key
from airlock.spoke.site._fleet_tables import FleetModel, Rollout


def revoke_step(ctx: StepContext) -> None:
    """Takes every revoked version off its rollouts and off the stable line (see the module)."""
    revoked = revoked_versions(ctx.session)
    if not revoked:
        return
    rollouts = ctx.session.exec(
        select(Rollout).where(col(Rollout.state).in_((*ACTIVE_STATES, "complete")))
    )
    emergencies: dict[tuple[str, str], str] = {}
    for rollout in list(rollouts):
        reason = revoked.get((rollout.model, rollout.version))
        if reason is None:
            continue
        was = rollout.state
        rollout.state, rollout.reason = "revoked", f"revoked by the hub: {reason}"
        set_extra(rollout, awaiting_promotion=False)
        number = ctx.emergency(rollout, REVOCATION_CAUSE, reason)
        emergencies[(rollout.model, rollout.version)] = number
        ctx.decision(rollout, "revoked", {"reason": reason, "was": was, "change_request": number})
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
        for rollout in running_rollouts(ctx.session, fleet.model):
            rollout.from_version = fleet.stable_version
            reason = revoked[(fleet.model, bad)]
            number = emergencies.get((fleet.model, bad)) or ctx.emergency(
                rollout, REVOCATION_CAUSE, reason
            )
            ctx.decision(
                rollout,
                "stable-revoked",
                {
                    "revoked": bad,
                    "reason": reason,
                    "from_version": fleet.stable_version,
                    "change_request": number,
                },
            )
