"""Dependency order between families, and the revocation fast path."""

from __future__ import annotations

from helpers.rolloutenv import (
    Site,
    complete,
    iris_site_fixture,  # noqa: F401 - the site fixture
    quick_plan,
)

from airlock.bundles.release import HealthCriteria, Ring, RolloutPlan
from airlock.spoke.rollout import pause
from airlock.spoke.site import SpokeHome


def everyone_on(site: Site, version: str | None) -> bool:
    wanted = [] if version is None else [(version, "stable")]
    return all(held == wanted for held in site.holding().values())


# --- dependencies -------------------------------------------------------------------------------


def test_a_dependent_model_follows_its_dependency_on_each_node(fleet_spoke: SpokeHome) -> None:
    site = Site(fleet_spoke)
    site.only("iris", "classifier")
    nodes = site.enrol(2)
    site.assign("iris", "1")
    one_ring = RolloutPlan(
        rings=(Ring("all", "1", 0),), health=HealthCriteria(consecutive_successes=1)
    )
    site.plan("classifier", "1", one_ring)  # the dependency (think perception 1.5)
    site.plan("iris", "1", one_ring, depends=[{"model": "classifier", "min_version": "1"}])
    site.step()
    events = site.step()
    waiting = [e for e in events if e["kind"] == "waiting-dependency"]
    assert waiting[0]["details"]["nodes"] == {n: ["classifier>=1"] for n in nodes}
    assert site.holding("iris") == {n: [] for n in nodes}
    assert site.holding("classifier") == {n: [("1", "candidate")] for n in nodes}

    site.obey(skip=[nodes[1]])  # node 1 runs classifier@1 now; node 2 has not said so yet
    events = site.step()
    assert site.holding("iris") == {nodes[0]: [("1", "candidate")], nodes[1]: []}
    assert [e["details"]["nodes"] for e in events if e["kind"] == "waiting-dependency"] == [
        {nodes[1]: ["classifier>=1"]}
    ]
    assert site.step() == []  # said once per change, not at every step
    site.obey()
    site.step()
    assert site.holding("iris") == {n: [("1", "candidate")] for n in nodes}
    assert site.holding("classifier") == {n: [("1", "candidate")] for n in nodes}
    site.home.engine.dispose()


# --- revocation ---------------------------------------------------------------------------------


def test_a_revoked_candidate_leaves_every_node_at_once(site: Site) -> None:
    complete(site, "1")
    site.assign("iris", "2")
    site.plan("iris", "2", quick_plan(approval="manual", bake=3600))
    site.step()
    site.step()
    site.run(1)
    assert any(("2", "candidate") in held for held in site.holding().values())
    site.revoke("iris", "2", "leaks training data")
    events = site.step()  # no bake time, no approval wait
    assert [(e["kind"], e["details"]["reason"]) for e in events] == [
        ("revoked", "leaks training data")
    ]
    assert site.rollout().state == "revoked"
    assert everyone_on(site, "1")
    assert site.run(3) == []  # the Director still names iris@2: never started again


def test_a_revoked_candidate_of_a_paused_rollout(site: Site) -> None:
    complete(site, "1")
    site.assign("iris", "2")
    site.plan("iris", "2", quick_plan())
    site.step()
    site.step()
    pause(site.home, site.rollout().id, "wait", "site-admin", site.clock.now())
    site.revoke("iris", "2")
    assert [e["kind"] for e in site.step()] == ["revoked"]
    assert site.rollout().state == "revoked" and everyone_on(site, "1")


def test_a_revoked_stable_version_falls_back_to_the_last_good_one(site: Site) -> None:
    first = complete(site, "1")
    second = complete(site, "2")
    assert site.stable() == "2"
    site.assign("iris", "3")
    site.plan("iris", "3", quick_plan())
    site.step()
    site.step()
    pause(site.home, site.rollout().id, "hold", "site-admin", site.clock.now())
    site.revoke("iris", "2", "wrong labels")
    events = site.step()
    assert [(e["rollout_id"], e["kind"]) for e in events] == [
        (second, "revoked"),
        (site.rollout().id, "stable-revoked"),
    ]
    assert site.stable() == "1" and site.rollout(version="1").id == first
    paused = site.rollout()
    assert paused.state == "paused" and paused.from_version == "1"
    for node, held in site.holding().items():
        assert ("2", "stable") not in held and ("1", "stable") in held, node


def test_revoking_the_only_version_leaves_nodes_without_it(site: Site) -> None:
    complete(site, "1")
    site.revoke("iris", "1")
    site.step()
    assert site.stable() is None and everyone_on(site, None)
