"""One analysis interval of a ring: canary against stable, then pass, fail or roll back.

The judge itself is :mod:`airlock.spoke.rollout._analysis`; this module applies
its verdict to a rollout: counts failures and successes, rolls back past the
plan's failure limit (recorded against an emergency change), and emits one
event per interval.
"""

from __future__ import annotations

from dataclasses import replace

from airlock.bundles.clock import utc_iso
from airlock.bundles.release import RolloutPlan
from airlock.spoke.rollout._analysis import FAILED, INCONCLUSIVE, analyse
from airlock.spoke.rollout._change import ROLLBACK_CAUSE, change_number
from airlock.spoke.rollout._decisions import StepContext, set_extra
from airlock.spoke.site._fleet_tables import Rollout


def analyse_interval(
    ctx: StepContext,
    rollout: Rollout,
    plan: RolloutPlan,
    *,
    breaches_only: bool = False,
    unhealthy: dict[str, str] | None = None,
) -> bool:
    """Runs one interval's analysis; True when it rolled the rollout back.

    With ``breaches_only`` (a rollout paused by its window), only failures
    count: a pass or an inconclusive interval changes nothing and says nothing.
    ``unhealthy`` (ring node → reason) are ring nodes that installed the
    candidate and fell back because it failed their health check: bad
    health, so the interval fails whatever the figures say.
    """
    since, until = rollout.last_analysis_at, utc_iso(ctx.now)
    health = plan.health
    verdict = analyse(
        ctx.session, rollout.model, rollout.version, rollout.from_version, health, since, until
    )
    if unhealthy:
        first = unhealthy[min(unhealthy)]
        breach = f"{len(unhealthy)} ring node(s) failed the health check ({first})"
        verdict = replace(verdict, outcome=FAILED, breaches=[*verdict.breaches, breach])
    figures = {"since": since, "until": until, **verdict.to_dict()}
    rollout.last_analysis_at = until
    set_extra(rollout, last_analysis=figures)
    if breaches_only and verdict.outcome != FAILED:
        return False
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
            was = rollout.state
            rollout.state = "rolled-back"
            rollout.reason = "; ".join(verdict.breaches)
            set_extra(rollout, awaiting_promotion=False)
            number = ctx.emergency(rollout, ROLLBACK_CAUSE, rollout.reason)
            ctx.decision(
                rollout,
                "rolled-back",
                {
                    **figures,
                    **counters,
                    "reason": rollout.reason,
                    "to": rollout.from_version,
                    "was": was,
                    "change_request": number,
                    "original_change_request": change_number(rollout),
                },
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
