"""`airlock hub revoke`: out of the Image, sites on the previous good version, small bundles."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.identities import SiteKeys
from helpers.onnx_models import make_onnx_model
from helpers.tenantkeys import TENANT_PASSPHRASE, TenantSecrets, make_tenant_key
from sqlmodel import Session, select
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import ConflictError, NotFoundError, SecretError, UsageError
from airlock.bundles.metrics import RolledBackVersion
from airlock.bundles.models import BundleKind
from airlock.bundles.release import RolloutPlan
from airlock.hub import catalog as site_rollbacks
from airlock.hub.catalog import list_revocations
from airlock.hub.context import (
    HubContext,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
    open_hub,
)
from airlock.hub.export import assign, commit_export, export, plan_export
from airlock.hub.intake import add_model
from airlock.hub.repos import verify_delegations
from airlock.hub.revocation import SiteRepoint, revoke
from airlock.hub.sites import add_site, add_tenant, list_sites
from airlock.hub.store import HubExport, HubRevocation

REASON = "wrong answers on night-time images"


@pytest.fixture
def ready(
    hub: HubContext, clock: FixedClock, site: SiteKeys, other_site: SiteKeys, tmp_path: Path
) -> HubContext:
    """detector@1..3 released a minute apart; plant-7 runs @3, plant-9 runs @1."""
    add_site(hub, site.identity)
    add_site(hub, other_site.identity)
    for version in ("1", "2", "3"):
        model = make_onnx_model(tmp_path / f"v{version}" / "det.onnx", seed=int(version))
        add_model(hub, "detector", version, model)
        clock.advance(dt.timedelta(minutes=1))
    assign(hub, "plant-7", "detector", "3")
    assign(hub, "plant-9", "detector", "1")
    return hub


def _paths(hub: HubContext, site_id: str) -> set[str]:
    return set(load_site_metadata(hub, site_id).targets.signed.targets)


def _revocations(hub: HubContext, site_id: str) -> object:
    return load_site_metadata(hub, site_id).targets.signed.unrecognized_fields.get(
        tufrepo.REVOCATIONS_FIELD
    )


def _last(hub: HubContext) -> tuple[str, str, str]:
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    return entry.action, entry.outcome, entry.object


def test_revoke_removes_the_version_and_moves_sites_to_the_previous_good_one(
    ready: HubContext, clock: FixedClock
) -> None:
    tenant_role = load_image_repo(ready).tenants["default"]
    role_version = tenant_role.signed.version
    result = revoke(ready, "detector", "3", REASON)

    assert result.sites == (SiteRepoint("plant-7", "3", "2"),)
    assert result.notified == ("plant-7", "plant-9")
    assert (result.role, result.removed_targets) == ("tenant-default", ("detector/3/det.onnx",))
    image = load_image_repo(ready)
    verify_delegations(image)
    assert image.tenants["default"].signed.version == role_version + 1
    assert set(image.model_targets("detector")) == {"detector/1/det.onnx", "detector/2/det.onnx"}
    assert image.snapshot is not None
    assert image.snapshot.signed.meta["tenant-default.json"].version == role_version + 1

    assert _paths(ready, "plant-7") == {"detector/2/det.onnx"}
    target = load_site_metadata(ready, "plant-7").targets.signed.targets["detector/2/det.onnx"]
    assert target.custom["airlock"]["rollout"] == RolloutPlan().to_dict()
    assert _paths(ready, "plant-9") == {"detector/1/det.onnx"}
    entry = {"model": "detector", "version": "3", "reason": REASON, "revoked_at": result.revoked_at}
    assert result.revoked_at == utc_iso(clock.now())
    for site_id in ("plant-7", "plant-9"):
        assert _revocations(ready, site_id) == [entry]
        targets = load_site_metadata(ready, site_id).targets
        load_director_roots(ready).root.signed.verify_delegate(
            Targets.type, targets.signed_bytes, targets.signatures
        )
    assert [s.assignments for s in list_sites(ready)] == [{"detector": "2"}, {"detector": "1"}]
    assert list_revocations(ready) == [entry]
    with Session(ready.engine) as session:
        row = session.exec(select(HubRevocation)).one()
    assert (row.name, row.version, row.reason) == ("detector", "3", REASON)
    assert row.principal

    assert _last(ready) == ("hub.revoke", "success", "detector@3")
    details = json.loads(AuditLog(ready.engine, "hub").entries()[-1].details)
    assert details["reason"] == REASON and details["sites"] == [
        {"site_id": "plant-7", "previous": "3", "now": "2", "skipped_rolled_back": [], "note": ""}
    ]
    assert verify_engine(ready.engine).ok


def test_a_revoked_version_is_never_assigned_released_or_revoked_again(
    ready: HubContext, tmp_path: Path
) -> None:
    revoke(ready, "detector", "3", REASON)
    before = tree_digest(ready.home.root)
    with pytest.raises(ConflictError, match=f"cannot assign detector@3: it was revoked .*{REASON}"):
        assign(ready, "plant-9", "detector", "3")
    assert _last(ready) == ("hub.assign", "refused", "plant-9:detector@3")
    with pytest.raises(ConflictError, match="cannot release detector@3: it was revoked"):
        add_model(ready, "detector", "3", tmp_path / "v3" / "det.onnx")
    with pytest.raises(ConflictError, match="cannot revoke detector@3: it was revoked"):
        revoke(ready, "detector", "3", "again")
    assert _last(ready) == ("hub.revoke", "refused", "detector@3")
    assert tree_digest(ready.home.root) == before
    assert [s.assignments for s in list_sites(ready)] == [{"detector": "2"}, {"detector": "1"}]


@pytest.mark.parametrize(
    ("name", "version", "reason", "error", "match"),
    [
        ("detector", "9", REASON, NotFoundError, "detector@9 is not released"),
        ("nothing", "1", REASON, NotFoundError, "nothing@1 is not released"),
        ("detector", "3", "  ", UsageError, "needs a reason"),
    ],
)
def test_bad_revocations_change_nothing(
    ready: HubContext, name: str, version: str, reason: str, error: type[Exception], match: str
) -> None:
    before = tree_digest(ready.home.root)
    with pytest.raises(error, match=match):
        revoke(ready, name, version, reason)
    assert tree_digest(ready.home.root) == before
    assert _last(ready) == ("hub.revoke", "refused", f"{name}@{version}")
    assert list_revocations(ready) == []


def test_each_revocation_falls_back_further_and_finally_unassigns(
    ready: HubContext, clock: FixedClock
) -> None:
    revoke(ready, "detector", "3", REASON)
    clock.advance(dt.timedelta(minutes=1))
    second = revoke(ready, "detector", "2", "also bad")
    assert second.sites == (SiteRepoint("plant-7", "2", "1"),)
    clock.advance(dt.timedelta(minutes=1))
    last = revoke(ready, "detector", "1", "all bad")
    assert set(last.sites) == {SiteRepoint("plant-7", "1", None), SiteRepoint("plant-9", "1", None)}
    assert [s.assignments for s in list_sites(ready)] == [{}, {}]
    assert _paths(ready, "plant-7") == _paths(ready, "plant-9") == set()
    listed = _revocations(ready, "plant-9")
    assert isinstance(listed, list)
    assert [(e["version"], e["reason"]) for e in listed] == [
        ("3", REASON),
        ("2", "also bad"),
        ("1", "all bad"),
    ]
    assert load_image_repo(ready).model_targets("detector") == {}


def test_the_fallback_keeps_the_plan_the_version_had_at_the_site(ready: HubContext) -> None:
    """A site that rolled @2 back under its plan must not be told to roll it out afresh."""
    slow = RolloutPlan.from_dict({"interval_seconds": 120})
    assign(ready, "plant-7", "detector", "2", slow)
    assign(ready, "plant-7", "detector", "3")
    revoke(ready, "detector", "3", REASON)
    assert load_site_metadata(ready, "plant-7").signed_plan("detector", "2") == slow.to_dict()


def test_the_previous_good_version_follows_release_order(
    ready: HubContext, clock: FixedClock, tmp_path: Path
) -> None:
    """A hotfix 2.1 released after 3 is not "before" 3: 3 falls back to 2."""
    add_model(ready, "detector", "2.1", make_onnx_model(tmp_path / "v21" / "det.onnx", seed=21))
    assert revoke(ready, "detector", "3", REASON).sites == (SiteRepoint("plant-7", "3", "2"),)
    assign(ready, "plant-7", "detector", "2.1")
    assert revoke(ready, "detector", "2.1", REASON).sites == (SiteRepoint("plant-7", "2.1", "2"),)


def test_a_new_site_learns_the_revocations_so_far(ready: HubContext) -> None:
    revoke(ready, "detector", "3", REASON)
    from helpers.identities import make_site

    add_site(ready, make_site("plant-11").identity)
    listed = _revocations(ready, "plant-11")
    assert isinstance(listed, list) and [e["version"] for e in listed] == ["3"]


def test_a_tenant_held_role_is_re_signed_with_the_tenants_secret(
    hub: HubContext, clock: FixedClock, site: SiteKeys, tmp_path: Path
) -> None:
    held = make_tenant_key(tmp_path / "initech-operator")
    add_tenant(hub, "initech", held.uri, held.public_key)
    add_site(hub, site.identity)
    operated = open_hub(hub.home.root, TenantSecrets(initech=TENANT_PASSPHRASE), clock=clock)
    try:
        for version in ("1", "2"):
            model = make_onnx_model(tmp_path / f"f{version}" / "f.onnx", seed=int(version))
            add_model(operated, "forecaster", version, model, tenant="initech")
            clock.advance(dt.timedelta(minutes=1))
        assign(operated, "plant-7", "forecaster", "2")
        before = tree_digest(hub.home.root)
        with pytest.raises(SecretError, match="tenant 'initech'"):
            revoke(hub, "forecaster", "2", REASON)  # knows only the hub passphrase
        assert tree_digest(hub.home.root) == before and list_revocations(hub) == []
        result = revoke(operated, "forecaster", "2", REASON)
        assert result.role == "tenant-initech" and result.sites[0].now == "1"
        verify_delegations(load_image_repo(operated))
    finally:
        operated.close()


# --- bundles after a revocation ------------------------------------------------------------------


def _exports(hub: HubContext) -> list[tuple[str, int, str, bool]]:
    with Session(hub.engine) as session:
        rows = session.exec(select(HubExport).order_by(HubExport.sequence))  # type: ignore[arg-type]
        return [(r.site_id, r.sequence, r.kind, r.full) for r in rows]


def test_exports_leave_out_versions_already_sent_and_revocation_bundles_are_small(
    ready: HubContext, clock: FixedClock, tmp_path: Path
) -> None:
    assign(ready, "plant-7", "detector", "2")
    first = plan_export(ready, "plant-7")
    assert (first.kind, first.omitted, len(first.blobs)) == (BundleKind.FULL, (), 1)
    commit_export(ready, first, tmp_path / "b1")
    assign(ready, "plant-7", "detector", "3")
    clock.advance(dt.timedelta(minutes=5))
    second = export(ready, "plant-7", tmp_path / "b2")
    assert (second.kind, second.omitted) == (BundleKind.FULL, ())  # detector@3 is new here

    clock.advance(dt.timedelta(minutes=5))
    revoke(ready, "detector", "3", REASON)
    plan = plan_export(ready, "plant-7")
    assert (plan.kind, plan.omitted, plan.blobs, plan.carried) == (
        BundleKind.REVOCATION,
        ("detector@2",),
        [],
        (),
    )
    envelope = commit_export(ready, plan, tmp_path / "revocation")
    assert (envelope.kind, envelope.omitted) == (BundleKind.REVOCATION, ("detector@2",))
    size = sum(p.size for p in envelope.parts)
    model_size = (tmp_path / "v2" / "det.onnx").stat().st_size
    assert size < 64 * 1024, "a revocation bundle carries metadata only"
    details = json.loads(AuditLog(ready.engine, "hub").entries()[-2].details)  # [-1]: checkpoint
    assert (details["kind"], details["omitted"], details["blobs"]) == (
        "revocation",
        ["detector@2"],
        [],
    )

    again = plan_export(ready, "plant-7")  # nothing new since: a delta, not a revocation
    assert (again.kind, again.omitted, again.blobs) == (BundleKind.DELTA, ("detector@2",), [])
    full = plan_export(ready, "plant-7", full=True)
    assert (full.kind, full.omitted, len(full.blobs)) == (BundleKind.FULL, (), 1)
    assert full.blobs[0].length == model_size
    commit_export(ready, full, tmp_path / "full")
    assert _exports(ready) == [
        ("plant-7", 1, "full", False),
        ("plant-7", 2, "full", False),
        ("plant-7", 3, "revocation", False),
        ("plant-7", 4, "full", True),
    ]

    # plant-9 was never sent anything: its first bundle carries detector@1
    other = plan_export(ready, "plant-9")
    assert (other.kind, other.omitted, len(other.blobs)) == (BundleKind.FULL, (), 1)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, ready: HubContext) -> Callable[..., Result]:
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(ready.home.root))

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["hub", *args], catch_exceptions=False)

    return run


def test_the_revoke_command(cli: Callable[..., Result], ready: HubContext, tmp_path: Path) -> None:
    result = cli("revoke", "detector", "3", "--reason", REASON, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["version"], report["reason"]) == ("detector", "3", REASON)
    assert report["sites"] == [
        {"site_id": "plant-7", "previous": "3", "now": "2", "skipped_rolled_back": [], "note": ""}
    ]

    result = cli("revoke", "detector", "3", "--reason", REASON)
    assert result.exit_code == ConflictError.exit_code
    assert result.stdout == "" and "it was revoked" in result.stderr

    result = cli("revoke", "detector", "2", "--reason", "bad too")
    assert result.exit_code == 0, result.output
    assert "revoked detector@2" in result.stdout and "plant-7" in result.stdout

    result = cli("export", "--site", "plant-7", "--out", str(tmp_path / "b"), "--full", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["envelope"]["kind"] == "full"


def _rolled_back(hub: HubContext, site_id: str, *versions: str) -> None:
    """What a site's metrics bundle reports: its newest rollouts of these versions rolled back."""
    reported = [RolledBackVersion("detector", v, "2026-03-01T10:00:00Z") for v in versions]
    with session_scope(hub.engine) as session:
        site_rollbacks.store(session, site_id, 1, reported)


def test_the_fallback_skips_a_version_the_site_rolled_back(ready: HubContext) -> None:
    assign(ready, "plant-9", "detector", "3")
    _rolled_back(ready, "plant-7", "2")  # plant-7's nodes fell back from 2; plant-9's did not
    result = revoke(ready, "detector", "3", REASON)
    assert result.sites == (
        SiteRepoint("plant-7", "3", "1", ("2",)),
        SiteRepoint("plant-9", "3", "2"),
    )
    assert _paths(ready, "plant-7") == {"detector/1/det.onnx"}
    assert _paths(ready, "plant-9") == {"detector/2/det.onnx"}
    entry = AuditLog(ready.engine, "hub").entries()[-1]
    sites = json.loads(entry.details)["sites"]
    assert sites[0]["skipped_rolled_back"] == ["2"]
    assert sites[0]["note"] == "skipped 2: the site rolled it back"


def test_with_every_earlier_version_rolled_back_the_site_is_left_unassigned(
    cli: Callable[..., Result], ready: HubContext
) -> None:
    _rolled_back(ready, "plant-7", "1", "2")
    result = cli("revoke", "detector", "3", "--reason", REASON)
    assert result.exit_code == 0, result.output
    assert "(unassigned)" in result.stdout and "rolled back" in result.stdout
    assert list_sites(ready)[0].assignments == {}
    assert _paths(ready, "plant-7") == set()
    entry = AuditLog(ready.engine, "hub").entries()[-1]
    [site] = json.loads(entry.details)["sites"]
    assert (site["now"], site["skipped_rolled_back"]) == (None, ["2", "1"])
    assert site["note"] == "unassigned: the site rolled back 2, 1, and no other version is left"


def test_revocations_and_rollbacks_show_in_status_and_model_list(
    cli: Callable[..., Result], ready: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # a wide terminal: table cells stay on one line
    _rolled_back(ready, "plant-9", "1")
    revoke(ready, "detector", "3", REASON)
    listed = {m["version"]: m for m in json.loads(cli("model", "list", "--json").stdout)}
    assert listed["3"]["revoked"]["reason"] == REASON and listed["3"]["revoked"]["revoked_at"]
    assert listed["2"]["revoked"] is None and listed["2"]["rolled_back_at"] == []
    assert [s["site_id"] for s in listed["1"]["rolled_back_at"]] == ["plant-9"]
    shown = json.loads(cli("model", "show", "detector", "3", "--json").stdout)
    assert shown["revoked"] == listed["3"]["revoked"]
    status = json.loads(cli("status", "--json").stdout)
    assert [(r["model"], r["version"], r["reason"]) for r in status["revocations"]] == [
        ("detector", "3", REASON)
    ]
    assert {m["version"]: m["revoked"] is not None for m in status["models"]} == {
        "1": False,
        "2": False,
        "3": True,
    }
    for args in (("model", "list"), ("status",), ("model", "show", "detector", "3")):
        table = cli(*args).stdout
        assert "REVOKED" in table and REASON in table, args
    assert "rolled back at plant-9" in cli("model", "list").stdout
