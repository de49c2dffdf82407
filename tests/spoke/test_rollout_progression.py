"""The rollout engine moves a version ring by ring to every node, and only then calls it stable."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers.fleetenv import site_signer
from helpers.rolloutenv import (
    Behaviour,
    Site,
    complete,
    iris_site_fixture,  # noqa: F401 - the site fixture
    quick_plan,
    ring_of,
)
from sqlmodel import Session

from airlock.bundles.db import session_scope
from airlock.bundles.protocol import HEALTH_CHECK, Refusal
from airlock.spoke.rollout import TickMemo, step, tick
from airlock.spoke.site import NodeDesired, Rollout


def test_three_rings_to_complete(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    assert [e["kind"] for e in site.step()] == ["created"]
    rollout = site.rollout()
    assert rollout.state == "pending" and rollout.from_version is None
    assert all(held == [] for held in site.holding().values())

    assert [e["kind"] for e in site.step()] == ["ring-started"]
    canary = ring_of(site, "1")
    assert len(canary) == 1
    assert site.holding()[canary[0]] == [("1", "candidate")]  # no stable version yet

    events = site.run(2)  # two passes and 120 s of bake: promoted
    assert [e["kind"] for e in events] == ["analysis-passed", "analysis-passed", "promoted"]
    first = events[0]["details"]
    assert first["canary"]["requests"] == 60 and first["canary"]["error_rate"] == "0.000000"
    assert "only the error rate judged" in first["notes"][0]
    half = ring_of(site, "1")
    assert len(half) == 2 and set(canary) <= set(half)  # rings are cumulative

    site.run(2)
    assert site.rollout().ring_index == 2 and len(ring_of(site, "1")) == 4
    events = site.run(2)
    assert events[-1]["kind"] == "complete"
    assert site.rollout().state == "complete"
    assert site.stable() == "1"
    assert all(held == [("1", "stable")] for held in site.holding().values())


def test_a_second_version_is_compared_with_the_stable_cohort(site: Site) -> None:
    complete(site, "1")
    site.assign("iris", "2")
    site.plan("iris", "2", quick_plan())
    site.step()
    site.step()
    rollout = site.rollout()
    assert rollout.from_version == "1" and rollout.state == "ring"
    canary = ring_of(site, "2")
    assert site.holding()[canary[0]] == [("1", "stable"), ("2", "candidate")]
    others = [n for n in site.nodes if n not in canary]
    assert all(site.holding()[n] == [("1", "stable")] for n in others)

    events = site.run(2, {"2": Behaviour(latency_ms=12.0)})
    passed = events[0]["details"]
    assert passed["stable"]["version"] == "1" and passed["stable"]["requests"] == 180
    assert float(passed["p99_ratio"]) == pytest.approx(1.2, abs=0.05)
    site.run(4)
    assert site.rollout().state == "complete" and site.stable() == "2"


def test_promotion_waits_for_the_bake_time(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan(bake=600))
    site.step()
    site.step()
    events = site.run(5)  # 300 s: successes reached, bake time not
    assert [e["kind"] for e in events] == ["analysis-passed"] * 5
    assert site.rollout().ring_index == 0
    events = site.run(5)
    assert "promoted" in [e["kind"] for e in events]
    assert site.rollout().ring_index == 1


def test_no_analysis_before_nodes_run_the_candidate(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    site.step()
    for _ in range(3):  # nodes report, but not running the candidate: nothing to judge yet
        for node in site.nodes:
            site.report(node, [])
        assert site.step(60) == []
    rollout = site.rollout()
    assert rollout.last_analysis_at == rollout.ring_started_at
    events = site.run(1)
    assert [e["kind"] for e in events] == ["analysis-passed"]


def test_a_step_is_idempotent(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    site.step()
    site.obey()
    site.clock.advance(dt.timedelta(seconds=60))
    site.measure(60)
    with session_scope(site.home.engine) as session:
        first = step(site.home, session, site.clock.now())
        assert [e.kind for e in first] == ["analysis-passed"]
    with session_scope(site.home.engine) as session:
        before = session.get(Rollout, site.rollout().id)
        assert before is not None
        snapshot = before.model_dump()
        assert step(site.home, session, site.clock.now()) == []
        after = session.get(Rollout, before.id)
        assert after is not None and after.model_dump() == snapshot
    assert site.rollout().consecutive_successes == 1


def test_site_limits_slow_the_plan_down(site: Site) -> None:
    config = site.home.path / "airlock.toml"
    config.write_text(
        config.read_text()
        + "\n[rollout]\nmin_bake_seconds = 600\nmin_interval_seconds = 120\n"
        + "min_consecutive_successes = 3\nmanual_promotion = true\n"
    )
    site.reopen()
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())  # bake 120 s, interval 60 s, 2 successes, auto
    site.step()
    plan = site.rollout().plan
    assert plan["interval_seconds"] == 120
    assert plan["health"]["consecutive_successes"] == 3
    assert {r["bake_seconds"] for r in plan["rings"]} == {600}
    assert {r["approval"] for r in plan["rings"]} == {"manual"}
    site.step()
    events = site.run(12)  # 720 s: an analysis every 120 s; healthy and baked at 600 s
    kinds = [e["kind"] for e in events]
    assert kinds.count("analysis-passed") == 6
    assert kinds.count("awaiting-promotion") == 1  # said once, not at every step
    assert "promoted" not in kinds
    assert site.rollout().ring_index == 0 and site.rollout().extra["awaiting_promotion"]


def test_a_newer_assignment_supersedes_the_running_rollout(site: Site) -> None:
    complete(site, "1")
    site.assign("iris", "2")
    site.plan("iris", "2", quick_plan())
    site.step()
    site.step()
    old = site.rollout()
    assert ring_of(site, "2")
    site.assign("iris", "3")
    site.plan("iris", "3", quick_plan())
    events = site.step()
    assert [(e["rollout_id"], e["kind"]) for e in events] == [
        (old.id, "aborted"),
        (site.rollout().id, "created"),
    ]
    assert site.rollout(version="2").state == "aborted"
    assert site.rollout(version="2").reason == "superseded by iris@3"
    assert all(held == [("1", "stable")] for held in site.holding().values())
    assert site.rollout().from_version == "1"
    site.step()
    assert len(ring_of(site, "3")) == 1


def test_other_families_are_left_alone(site: Site) -> None:
    with session_scope(site.home.engine) as session:
        for node in site.nodes:
            session.add(
                NodeDesired(
                    node_id=node,
                    models=[{"model": "other", "version": "7", "role": "stable"}],
                )
            )
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    site.step()
    for node in site.nodes:
        models = {e["model"] for e in site.desired(node)}
        assert "other" in models


def test_tick_signs_what_the_step_changed(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    signer = site_signer(site.home)
    site.step()
    report = tick(site.home, signer, site.clock.now())
    assert [e["kind"] for e in report.events] == ["ring-started"]
    canary = ring_of(site, "1")
    assert list(report.published) == canary
    with Session(site.home.engine) as session:
        row = session.get(NodeDesired, canary[0])
        assert row is not None and row.targets_version == 1
    again = tick(site.home, signer, site.clock.now())
    assert again.events == () and again.published == ()


def test_a_service_tick_signs_only_when_a_node_changed_and_renews_once_a_minute(
    site: Site,
) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    signer, memo = site_signer(site.home), TickMemo()
    site.step()
    first = tick(site.home, signer, site.clock.now(), memo)
    assert list(first.published) == ring_of(site, "1")
    # a day later nothing changed for any node: only the renewal is due, and done once
    site.clock.advance(dt.timedelta(hours=23))
    site.obey()  # the nodes kept reporting all day
    renewed = tick(site.home, signer, site.clock.now(), memo)
    assert renewed.published == () and set(renewed.refreshed) >= set(ring_of(site, "1"))
    assert tick(site.home, signer, site.clock.now(), memo).refreshed == ()


def test_a_node_refusing_the_candidate_is_reported_once(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    site.step()
    canary = ring_of(site, "1")[0]
    refusal = Refusal("iris", "1", "needs 4096 MB of memory, the node has 2048 MB", "x")
    site.report(canary, [], [refusal])
    events = site.step(10)
    assert [(e["kind"], e["details"]["nodes"]) for e in events] == [
        ("node-refused", {canary: refusal.reason})
    ]
    assert site.step(10) == []
    assert site.rollout().state == "ring"  # a refusal is no analysis: it decides nothing


def test_a_ring_node_failing_its_health_check_fails_the_analysis(site: Site) -> None:
    complete(site, "1")
    site.assign("iris", "2")
    site.plan("iris", "2", quick_plan(failure_limit=1))
    site.step()
    site.step()
    [canary] = ring_of(site, "2")
    reason = "health check: iris@2 warm-up p95 latency 52.137 ms is above the signed maximum 50 ms"
    site.report(canary, [], [Refusal("iris", "2", reason, "x", HEALTH_CHECK)])
    # no figures from the candidate at all (the node fell back): its health check is the verdict
    first = site.step(60)
    assert ("analysis-failed", 1) in [(e["kind"], e["details"].get("failures")) for e in first]
    [failed] = [e for e in first if e["kind"] == "analysis-failed"]
    assert "1 ring node(s) failed the health check (health check: iris@2" in str(failed["details"])
    site.report(canary, [], [Refusal("iris", "2", reason, "x", HEALTH_CHECK)])  # still alive
    second = site.step(60)
    assert "rolled-back" in [e["kind"] for e in second]
    assert site.rollout(version="2").state == "rolled-back"
    assert all(held == [("1", "stable")] for held in site.holding().values())
