"""`airlock hub assign / unassign`: Director targets that agree with the Image."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.hubenv import tree_digest
from helpers.identities import SiteKeys
from helpers.onnx_models import make_onnx_model
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.errors import NotFoundError
from airlock.hub.catalog import list_models
from airlock.hub.context import (
    HubContext,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
)
from airlock.hub.export import assign, unassign
from airlock.hub.intake import add_model
from airlock.hub.sites import add_site, list_sites


@pytest.fixture
def ready(
    hub: HubContext, site: SiteKeys, other_site: SiteKeys, onnx_dir: Path, tmp_path: Path
) -> HubContext:
    add_site(hub, site.identity)
    add_site(hub, other_site.identity)
    add_model(hub, "detector", "1", onnx_dir)
    add_model(hub, "detector", "2", make_onnx_model(tmp_path / "v2" / "det.onnx", seed=5))
    return hub


def test_director_targets_equal_the_image_targets(ready: HubContext) -> None:
    assert assign(ready, "plant-7", "detector", "1") is True
    site_md = load_site_metadata(ready, "plant-7")
    targets = site_md.targets
    load_director_roots(ready).root.signed.verify_delegate(
        Targets.type, targets.signed_bytes, targets.signatures
    )
    assert targets.signed.version == 2
    assert site_md.snapshot.signed.meta["targets.json"].version == 2
    image = load_image_repo(ready).model_targets("detector")
    director = targets.signed.targets
    assert set(director) == {p for p in image if p.startswith("detector/1/")}
    model = next(m for m in list_models(ready) if m.version == "1")
    for path, target in director.items():
        assert (target.length, target.hashes) == (image[path].length, image[path].hashes)
        filename = path.rsplit("/", 1)[1]
        assert target.custom == tufrepo.director_custom("plant-7", model, filename)
    assert load_site_metadata(ready, "plant-9").targets.signed.targets == {}
    assert [s.assignments for s in list_sites(ready)] == [{"detector": "1"}, {}]


def test_assigning_a_new_version_replaces_the_old_one(ready: HubContext) -> None:
    assign(ready, "plant-7", "detector", "1")
    assign(ready, "plant-7", "detector", "2")
    paths = set(load_site_metadata(ready, "plant-7").targets.signed.targets)
    assert paths == {"detector/2/det.onnx"}
    assert list_sites(ready)[0].assignments == {"detector": "2"}


def test_assigning_the_same_version_changes_nothing(ready: HubContext) -> None:
    assign(ready, "plant-7", "detector", "1")
    before = tree_digest(ready.home.root)
    assert assign(ready, "plant-7", "detector", "1") is False
    assert tree_digest(ready.home.root) == before
    assert AuditLog(ready.engine, "hub").entries()[-1].outcome == "unchanged"


def test_unassign_removes_the_entries(ready: HubContext) -> None:
    assign(ready, "plant-7", "detector", "1")
    unassign(ready, "plant-7", "detector")
    targets = load_site_metadata(ready, "plant-7").targets.signed
    assert targets.targets == {} and targets.version == 3
    assert list_sites(ready)[0].assignments == {}
    with pytest.raises(NotFoundError, match="no assignment"):
        unassign(ready, "plant-7", "detector")


@pytest.mark.parametrize(
    ("site_id", "name", "version", "match"),
    [
        ("plant-8", "detector", "1", "site 'plant-8' is not registered"),
        ("plant-7", "detector", "3", "detector@3 is not released"),
        ("plant-7", "nothing", "1", "nothing@1 is not released"),
    ],
)
def test_unknown_site_or_model_is_refused(
    ready: HubContext, site_id: str, name: str, version: str, match: str
) -> None:
    before = tree_digest(ready.home.root)
    with pytest.raises(NotFoundError, match=match):
        assign(ready, site_id, name, version)
    assert tree_digest(ready.home.root) == before
    last = AuditLog(ready.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("hub.assign", "refused")
