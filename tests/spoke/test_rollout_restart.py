"""A restarted spoke (a fresh SpokeHome on the same directory) carries on from every state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.rolloutenv import Behaviour, Site, complete, iris_site, quick_plan

from airlock.spoke.rollout import pause, promote, resume
from airlock.spoke.site import SpokeHome


@pytest.fixture
def site(fleet_spoke: SpokeHome) -> Iterator[Site]:
    """4 nodes, iris@1 stable everywhere; iris@2 assigned with a quick plan."""
    made = iris_site(fleet_spoke)
    complete(made, "1")
    made.assign("iris", "2")
    made.plan("iris", "2", quick_plan())
    yield made
    made.home.engine.dispose()


def test_restart_while_pending(site: Site) -> None:
    site.step()
    assert site.rollout().state == "pending"
    site.reopen()
    assert [e["kind"] for e in site.step()] == ["ring-started"]
    assert len(site.rollouts()) == 2  # iris@1's and iris@2's: nothing created twice


def test_restart_in_a_ring_keeps_counters_and_ring_members(site: Site) -> None:
    site.step()
    site.step()
    site.run(1)
    holding = site.holding()
    before = site.rollout()
    site.reopen()
    assert site.step() == []  # nothing due: no double-counted interval
    assert site.holding() == holding
    assert site.rollout().consecutive_successes == before.consecutive_successes == 1
    events = site.run(1)
    assert [e["kind"] for e in events] == ["analysis-passed", "promoted"]


def test_restart_while_paused(site: Site) -> None:
    site.step()
    site.step()
    rollout_id = site.rollout().id
    pause(site.home, rollout_id, "maintenance", "site-admin", site.clock.now())
    site.reopen()
    assert site.run(3) == []
    assert site.rollout().state == "paused"
    resume(site.home, rollout_id, "site-admin", site.clock.now())
    site.reopen()
    assert site.run(2)[-1]["kind"] == "promoted"


def test_restart_while_awaiting_promotion(site: Site) -> None:
    site.plan("iris", "2", quick_plan(approval="manual"))
    site.step()
    site.step()
    assert site.run(2)[-1]["kind"] == "awaiting-promotion"
    site.reopen()
    kinds = [e["kind"] for e in site.run(1)]
    assert kinds == ["analysis-passed"]  # the wait is not announced again
    assert site.rollout().extra["awaiting_promotion"]
    promote(site.home, site.rollout().id, "site-admin", site.clock.now())
    assert site.rollout().ring_index == 1


def test_restart_after_a_rollback(site: Site) -> None:
    site.step()
    site.step()
    site.run(2, {"2": Behaviour(error_rate=0.5)})
    assert site.rollout().state == "rolled-back"
    holding = site.holding()
    site.reopen()
    assert site.run(3) == []
    assert site.rollout().state == "rolled-back" and site.holding() == holding


def test_restart_after_completion(site: Site) -> None:
    site.step()
    site.step()
    site.run(6)
    assert site.rollout().state == "complete"
    site.reopen()
    assert site.run(3) == []
    assert site.stable() == "2"
    assert all(held == [("2", "stable")] for held in site.holding().values())
    complete(site, "3")  # and the next version rolls out from there
    assert site.rollout().from_version == "2"
