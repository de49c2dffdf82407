"""`airlock hub assign --plan`: the rollout plan travels signed in the site's Director targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.identities import SiteKeys
from helpers.onnx_models import make_onnx_model
from tuf.api.metadata import Targets

from airlock.bundles.audit import AuditLog
from airlock.bundles.cli import main
from airlock.bundles.errors import UsageError
from airlock.bundles.release import Ring, RolloutPlan
from airlock.hub.catalog import read_plan
from airlock.hub.context import HubContext, load_director_roots, load_site_metadata
from airlock.hub.export import assign
from airlock.hub.intake import add_model
from airlock.hub.sites import add_site, list_sites

PLAN_TOML = """\
interval_seconds = 30

[health]
max_error_rate = "0.02"
min_samples = 20

[[rings]]
name = "canary"
nodes = 2
bake_seconds = 60

[[rings]]
name = "half"
nodes = "0.5"
traffic = "split"
split_percent = 25
approval = "manual"

[[rings]]
name = "all"
nodes = "1"
"""


@pytest.fixture
def ready(hub: HubContext, site: SiteKeys, tmp_path: Path) -> HubContext:
    add_site(hub, site.identity)
    add_model(hub, "detector", "1", make_onnx_model(tmp_path / "v1" / "det.onnx"))
    return hub


def _plan_file(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _signed_plan(hub: HubContext, path: str) -> object:
    return (
        load_site_metadata(hub, "plant-7").targets.signed.targets[path].custom["airlock"]["rollout"]
    )


def test_a_plan_file_is_signed_into_the_primary_director_target(
    ready: HubContext, tmp_path: Path
) -> None:
    assert assign(ready, "plant-7", "detector", "1", plan_file=_plan_file(tmp_path, PLAN_TOML))
    targets = load_site_metadata(ready, "plant-7").targets
    load_director_roots(ready).root.signed.verify_delegate(
        Targets.type, targets.signed_bytes, targets.signatures
    )
    plan = read_plan(tmp_path / "plan.toml")
    assert _signed_plan(ready, "detector/1/det.onnx") == plan.to_dict()
    assert plan.rings[0] == Ring("canary", 2, bake_seconds=60)
    assert plan.rings[1].traffic == "split" and plan.rings[1].approval == "manual"
    assert (plan.interval_seconds, plan.health.max_error_rate, plan.health.min_samples) == (
        30,
        "0.02",
        20,
    )
    assert plan.health.failure_limit == 3  # missing keys take the defaults
    details = json.loads(AuditLog(ready.engine, "hub").entries()[-1].details)
    assert details["plan"] == plan.to_dict() and details["plan_file"].endswith("plan.toml")


def test_without_a_plan_the_default_plan_is_signed(ready: HubContext) -> None:
    assign(ready, "plant-7", "detector", "1")
    assert _signed_plan(ready, "detector/1/det.onnx") == RolloutPlan().to_dict()


def test_the_same_version_with_another_plan_is_signed_again(ready: HubContext) -> None:
    assign(ready, "plant-7", "detector", "1")
    version = load_site_metadata(ready, "plant-7").targets.signed.version
    slow = RolloutPlan(rings=(Ring("first", 1, bake_seconds=3600), Ring("all", "1")))
    assert assign(ready, "plant-7", "detector", "1", slow) is True
    assert load_site_metadata(ready, "plant-7").targets.signed.version == version + 1
    assert _signed_plan(ready, "detector/1/det.onnx") == slow.to_dict()
    assert assign(ready, "plant-7", "detector", "1", slow) is False
    assert AuditLog(ready.engine, "hub").entries()[-1].outcome == "unchanged"
    assert assign(ready, "plant-7", "detector", "1") is True  # back to the default plan


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("interval_seconds = [", "is not valid TOML"),
        ("interval_secs = 30\n", r"unknown key\(s\) in the plan: interval_secs"),
        ("[health]\nmax_error_rat = '0.1'\n", r"unknown key\(s\) in \[health\]"),
        ("[[rings]]\nname = 'a'\nnodes = '1'\nbake_second = 5\n", "ring 1: bake_second"),
        ("[[rings]]\nname = 'canary'\nnodes = '0.1'\n", "must cover every node"),
        ("[[rings]]\nnodes = '1'\n", "ring 1 needs a name and nodes"),
        ("[health]\nmax_error_rate = '2'\n", "max_error_rate must be between 0 and 1"),
        ("rings = 'all'\n", "rings must be a non-empty array"),
    ],
)
def test_a_bad_plan_file_is_refused_naming_the_file_and_nothing_is_assigned(
    ready: HubContext, tmp_path: Path, text: str, match: str
) -> None:
    path = _plan_file(tmp_path, text, "bad-plan.toml")
    before = tree_digest(ready.home.root)
    with pytest.raises(UsageError, match=match) as caught:
        assign(ready, "plant-7", "detector", "1", plan_file=path)
    assert str(path) in caught.value.message and caught.value.hint
    assert tree_digest(ready.home.root) == before
    assert list_sites(ready)[0].assignments == {}
    last = AuditLog(ready.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("hub.assign", "refused")


def test_a_missing_plan_file_is_refused(ready: HubContext, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read the rollout plan .*nope\.toml"):
        assign(ready, "plant-7", "detector", "1", plan_file=tmp_path / "nope.toml")
    assert list_sites(ready)[0].assignments == {}


def test_the_cli_signs_the_plan_file(
    ready: HubContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(ready.home.root))
    runner = CliRunner()
    path = _plan_file(tmp_path, PLAN_TOML)
    args = ["hub", "assign", "plant-7", "detector", "1", "--plan"]
    result = runner.invoke(main, [*args, str(path), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changed"] is True
    assert _signed_plan(ready, "detector/1/det.onnx") == read_plan(path).to_dict()

    bad = _plan_file(tmp_path, "interval_seconds = 'soon'\n", "bad.toml")
    result = runner.invoke(main, [*args, str(bad)], catch_exceptions=False)
    assert result.exit_code == UsageError.exit_code
    assert "bad.toml" in result.stderr and "interval_seconds" in result.stderr
