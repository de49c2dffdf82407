"""Canary analysis: rollback on each criterion, no decision on too little data, failure limit,
no flapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.rolloutenv import Behaviour, Site, complete, iris_site, quick_plan
from sqlmodel import Session

from airlock.bundles.db import session_scope
from airlock.bundles.release import HealthCriteria
from airlock.spoke.rollout import FAILED, INCONCLUSIVE, PASSED, Cohort, judge, read_cohort
from airlock.spoke.site import MetricWindow, SpokeHome


@pytest.fixture
def site(fleet_spoke: SpokeHome) -> Iterator[Site]:
    """The fleet spoke with 4 nodes, iris@1 stable everywhere."""
    made = iris_site(fleet_spoke)
    complete(made, "1")
    yield made
    made.home.engine.dispose()


def start(site: Site, version: str = "2", **plan: int) -> str:
    """Assigns ``iris@version`` with a quick plan and steps it into its canary ring."""
    site.assign("iris", version)
    site.plan("iris", version, quick_plan(**plan))  # type: ignore[arg-type]
    site.step()
    site.step()
    assert site.rollout().state == "ring"
    return site.rollout().id


def everyone_on(site: Site, version: str) -> bool:
    return all(held == [(version, "stable")] for held in site.holding().values())


# --- the judge alone ----------------------------------------------------------------------------


def test_judge_needs_min_samples_from_the_canary() -> None:
    health = HealthCriteria(min_samples=50)
    verdict = judge(Cohort("2", "candidate", 49, 49, 1, 900.0), Cohort("1", "stable", 500), health)
    assert verdict.outcome == INCONCLUSIVE
    assert "not enough data" in verdict.notes[0]


def test_judge_skips_latency_when_the_stable_cohort_is_small() -> None:
    health = HealthCriteria(min_samples=50)
    canary = Cohort("2", "candidate", 100, 0, 1, 90.0)
    verdict = judge(canary, Cohort("1", "stable", 10, 0, 1, 10.0), health)
    assert verdict.outcome == PASSED and verdict.p99_ratio is None
    assert "latency not judged" in verdict.notes[0]
    verdict = judge(canary, Cohort("1", "stable", 50, 0, 1, 10.0), health)
    assert verdict.outcome == FAILED and "9.00x" in verdict.breaches[0]


def test_judge_error_rate_at_the_ceiling_passes() -> None:
    health = HealthCriteria(max_error_rate="0.01", min_samples=50)
    at = judge(Cohort("2", "candidate", 100, 1), Cohort(None, "stable"), health)
    above = judge(Cohort("2", "candidate", 100, 2), Cohort(None, "stable"), health)
    assert (at.outcome, above.outcome) == (PASSED, FAILED)


# --- the engine ---------------------------------------------------------------------------------


def test_rollback_on_the_error_rate(site: Site) -> None:
    rollout_id = start(site)
    events = site.run(2, {"2": Behaviour(error_rate=0.2)})
    assert [e["kind"] for e in events] == ["analysis-failed", "analysis-failed", "rolled-back"]
    rolled = events[-1]["details"]
    assert rolled["canary"]["error_rate"] == "0.200000"
    assert rolled["canary"]["errors"] == 12 and rolled["canary"]["requests"] == 60
    assert "error rate 0.2000 is above the ceiling 0.01" in rolled["breaches"][0]
    assert rolled["failures"] == 2 and rolled["failure_limit"] == 1 and rolled["to"] == "1"
    rollout = site.rollout()
    assert (rollout.id, rollout.state) == (rollout_id, "rolled-back")
    assert "error rate" in rollout.reason
    assert everyone_on(site, "1") and site.stable() == "1"
    audit = [e for e in site.home.audit.entries() if e.action == "spoke.rollout.rolled-back"]
    assert len(audit) == 1 and audit[0].object == rollout_id


def test_rollback_on_the_p99_latency_ratio(site: Site) -> None:
    start(site)
    events = site.run(2, {"2": Behaviour(latency_ms=40.0), "1": Behaviour(latency_ms=10.0)})
    assert events[-1]["kind"] == "rolled-back"
    rolled = events[-1]["details"]
    assert rolled["canary"]["error_rate"] == "0.000000"
    assert float(rolled["canary"]["p99_ms"]) == pytest.approx(40.0, rel=0.03)
    assert float(rolled["stable"]["p99_ms"]) == pytest.approx(10.0, rel=0.03)
    assert float(rolled["p99_ratio"]) == pytest.approx(4.0, rel=0.05)
    assert "the stable" in rolled["breaches"][0] and "at most 1.5x" in rolled["breaches"][0]
    assert everyone_on(site, "1")


def test_too_few_samples_never_decide(site: Site) -> None:
    site.requests = 10  # each node answers 10 requests a minute: below min_samples (50)
    start(site)
    events = site.run(15, {"2": Behaviour(error_rate=1.0, latency_ms=500.0)})
    assert {e["kind"] for e in events} == {"inconclusive"}
    assert "not enough data" in events[0]["details"]["notes"][0]
    rollout = site.rollout()
    assert rollout.state == "ring" and rollout.ring_index == 0
    assert rollout.failures == 0 and rollout.consecutive_successes == 0
    site.requests = 60
    assert site.run(1)[0]["kind"] == "analysis-passed"


def test_the_failure_limit_is_the_number_of_failures_tolerated(site: Site) -> None:
    start(site, failure_limit=2, successes=3)
    bad, good = {"2": Behaviour(error_rate=0.5)}, {"2": Behaviour()}
    site.run(2, bad)
    assert (site.rollout().state, site.rollout().failures) == ("ring", 2)
    site.run(1, good)  # a pass resets the successes, not the failures
    assert (site.rollout().failures, site.rollout().consecutive_successes) == (2, 1)
    site.run(1, bad)
    assert site.rollout().state == "rolled-back" and site.rollout().failures == 3


def test_counters_reset_in_each_ring(site: Site) -> None:
    start(site, failure_limit=2, bake=300)
    site.run(1, {"2": Behaviour(error_rate=0.5)})
    site.run(2)
    rollout = site.rollout()
    assert rollout.ring_index == 0  # healthy, but baked 180 s of 300 s
    assert (rollout.failures, rollout.consecutive_successes) == (1, 2)
    site.run(2)
    rollout = site.rollout()
    assert rollout.ring_index == 1
    assert (rollout.failures, rollout.consecutive_successes) == (0, 0)


def test_a_rolled_back_version_is_not_retried_without_a_new_plan(site: Site) -> None:
    rolled = start(site)
    site.run(2, {"2": Behaviour(error_rate=0.5)})
    assert site.rollout().state == "rolled-back"
    assert site.run(5) == []  # the Director still assigns iris@2 with the same plan
    assert [r.id for r in site.rollouts()][-1] == rolled
    assert everyone_on(site, "1")

    site.plan("iris", "2", quick_plan(bake=180))  # a later import brings a new plan
    events = site.step()
    assert [e["kind"] for e in events] == ["created"]
    again = site.rollout()
    assert again.id != rolled and again.version == "2" and again.from_version == "1"
    site.step()
    assert site.rollout().state == "ring"


def test_a_window_that_arrives_late_counts_once_in_the_interval_it_arrived(
    fleet_spoke: SpokeHome,
) -> None:
    """A busy node's window ends in one interval but reaches the spoke in the next."""
    with session_scope(fleet_spoke.engine) as session:
        session.add(
            MetricWindow(
                node_id="node-1", model="iris", version="2", role="candidate",
                window_start="2026-11-23T10:00:00Z", window_end="2026-11-23T10:00:09Z",
                received_at="2026-11-23T10:00:14Z", requests=60, errors=1,
            )
        )  # fmt: skip
    with Session(fleet_spoke.engine) as session:
        when_it_ended = read_cohort(
            session, "iris", "2", "candidate", "2026-11-23T10:00:00Z", "2026-11-23T10:00:10Z"
        )
        when_it_arrived = read_cohort(
            session, "iris", "2", "candidate", "2026-11-23T10:00:10Z", "2026-11-23T10:00:20Z"
        )
    assert when_it_ended.requests == 0
    assert (when_it_arrived.requests, when_it_arrived.errors, when_it_arrived.nodes) == (60, 1, 1)
