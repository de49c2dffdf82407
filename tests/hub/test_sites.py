"""`airlock hub site add / list`: registering a site and its Director metadata."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from helpers.hubenv import tree_digest
from helpers.identities import SiteKeys
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.errors import ConflictError, MissingFileError, UsageError
from airlock.hub.context import HubContext, load_director_roots, load_site_metadata
from airlock.hub.sites import add_site, add_site_from_file, list_sites


def test_add_site_creates_signed_director_metadata_naming_the_site(
    hub: HubContext, site: SiteKeys
) -> None:
    info = add_site(hub, site.identity, transit_days=21)
    assert (info.site_id, info.transit_days, info.encrypt, info.sequence) == (
        "plant-7",
        21,
        True,
        0,
    )

    site_md = load_site_metadata(hub, "plant-7")
    root = load_director_roots(hub).root.signed
    targets = site_md.targets
    root.verify_delegate(Targets.type, targets.signed_bytes, targets.signatures)
    root.verify_delegate("snapshot", site_md.snapshot.signed_bytes, site_md.snapshot.signatures)
    root.verify_delegate("timestamp", site_md.timestamp.signed_bytes, site_md.timestamp.signatures)
    assert targets.signed.unrecognized_fields[tufrepo.SITE_ID_FIELD] == "plant-7"
    assert targets.signed.targets == {}
    assert site_md.snapshot.signed.meta["targets.json"].version == targets.signed.version
    assert site_md.timestamp.signed.snapshot_meta.version == site_md.snapshot.signed.version

    [listed] = list_sites(hub)
    assert listed.to_dict() == {**info.to_dict(), "assignments": {}}
    last = AuditLog(hub.engine, "hub").entries()[-1]
    assert (last.action, last.object, last.outcome) == ("hub.site.add", "plant-7", "success")
    assert json.loads(last.details)["age_recipient"] == site.identity.age_recipient


def test_default_transit_budget_comes_from_the_config(hub: HubContext, site: SiteKeys) -> None:
    assert add_site(hub, site.identity).transit_days == 30


def test_add_site_from_identity_file(hub: HubContext, site: SiteKeys, tmp_path: Path) -> None:
    path = tmp_path / "site-identity.json"
    path.write_text(json.dumps(site.identity.to_dict()))
    info = add_site_from_file(hub, path, encrypt=False)
    assert info.site_id == "plant-7" and info.encrypt is False


def test_bad_recipient_is_refused_and_nothing_is_stored(hub: HubContext, site: SiteKeys) -> None:
    before = tree_digest(hub.home.root)
    bad = dataclasses.replace(site.identity, age_recipient="age1" + "q" * 58)
    with pytest.raises(UsageError, match="not a valid age X25519 recipient"):
        add_site(hub, bad)
    assert list_sites(hub) == []
    assert tree_digest(hub.home.root) == before
    assert not hub.home.site_dir("plant-7").exists()
    last = AuditLog(hub.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("hub.site.add", "refused")
    assert verify_engine(hub.engine).ok


def test_bad_signing_key_is_refused(hub: HubContext, site: SiteKeys) -> None:
    bad = dataclasses.replace(site.identity, signing_key={"keytype": "ed25519"})
    with pytest.raises(UsageError, match="signing key"):
        add_site(hub, bad)
    assert list_sites(hub) == []


@pytest.mark.parametrize("days", [0, 366])
def test_transit_budget_out_of_range_is_refused(hub: HubContext, site: SiteKeys, days: int) -> None:
    with pytest.raises(UsageError, match="transit budget"):
        add_site(hub, site.identity, transit_days=days)
    assert list_sites(hub) == []


def test_a_site_is_registered_once(hub: HubContext, site: SiteKeys) -> None:
    add_site(hub, site.identity)
    before = tree_digest(hub.home.root)
    with pytest.raises(ConflictError, match="already registered"):
        add_site(hub, site.identity, transit_days=5)
    assert tree_digest(hub.home.root) == before
    assert [s.transit_days for s in list_sites(hub)] == [30]


def test_missing_or_malformed_identity_file(hub: HubContext, tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        add_site_from_file(hub, tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"site_id": "plant-7"}))
    with pytest.raises(UsageError, match="malformed site identity"):
        add_site_from_file(hub, broken)
    outcomes = [(e.action, e.outcome) for e in AuditLog(hub.engine, "hub").entries()[1:]]
    assert outcomes == [("hub.site.add", "refused"), ("hub.site.add", "refused")]
