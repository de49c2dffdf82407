"""``airlock spoke status``: a read-only view of trust, staged models and Director assignments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hubenv import HUB_TIME
from helpers.spokeenv import (
    SITE_ID,
    SPOKE_INIT_TIME,
    SPOKE_TIME,
    Invoke,
    World,
    assert_error_output,
    spoke_clock,
    table_rows,
    take_snapshot,
)
from sqlmodel import Session, select

from airlock.bundles.clock import FixedClock
from airlock.bundles.db import session_scope
from airlock.bundles.models import Envelope
from airlock.hub.context import HubContext
from airlock.hub.export import export
from airlock.hub.revocation import revoke
from airlock.spoke.importing import import_bundle
from airlock.spoke.site import DirectorAssignment, Rollout, SpokeHome
from airlock.spoke.status import read_status

RUNTIME_ROWS = (
    "onnxruntime",
    "newest ONNX opset",
    "execution providers",
    "architecture",
    "memory",
)
"""The rows of the site runtime table (what the validation gate checks against)."""


@pytest.fixture(scope="module")
def imported(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SpokeHome, Envelope]]:
    """A spoke that imported bundle 1 (classifier@1, detector@1); status tests only read it."""
    base = tmp_path_factory.mktemp("status")
    hub = world.new_hub(base / "hub", FixedClock(HUB_TIME))
    try:
        envelope = export(hub, SITE_ID, base / "bundle-1")
    finally:
        hub.close()
    home = world.new_spoke(base / "spoke")
    import_bundle(home, base / "bundle-1", spoke_clock())
    yield home, envelope
    home.engine.dispose()


def test_status_of_a_fresh_spoke(airlock: Invoke, spoke: SpokeHome) -> None:
    result = airlock("spoke", "status", "--home", str(spoke.path), passphrase=None)
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert f"spoke {SITE_ID}" in result.stdout
    for row in (
        ["Image root version", "1"],
        ["Director root version", "1"],
        ["Director targets version", "0"],
        ["last bundle sequence", "0"],
        ["last bundle id", "-"],
        ["time floor", SPOKE_INIT_TIME.isoformat()],
        ["last metrics export", "none yet"],
        ["hub acknowledged", "nothing yet"],
        ["attestations", "not required until the site holds a signed layout"],
    ):
        assert row in rows
    assert "staged models" in result.stdout and "assigned by the Director" in result.stdout
    runtime = [r[0] for r in rows if r[0] in RUNTIME_ROWS]
    assert runtime == list(RUNTIME_ROWS), "the site runtime table (validation gate)"
    assert ["days since the last bundle", "0"] in rows  # the cut-off rows (issue 12, point 21)
    cut_off_rows = 4
    assert len(rows) == 9 + cut_off_rows + len(RUNTIME_ROWS), "no staged model rows yet"


def test_status_table_after_an_import(
    airlock: Invoke, world: World, imported: tuple[SpokeHome, Envelope]
) -> None:
    home, envelope = imported
    before = take_snapshot(home)
    result = airlock("spoke", "status", "--home", str(home.path), passphrase=None)
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert ["last bundle sequence", "1"] in rows
    assert ["last bundle id", envelope.bundle_id] in rows
    assert ["time floor", envelope.created.isoformat()] in rows  # the signed creation time
    for ref, files in (("classifier@1", 1), ("detector@1", 2)):
        name, version = ref.split("@")
        size = sum(f.stat().st_size for f in world.sources[ref].files())
        staged = [name, version, str(files), str(size), "1", SPOKE_TIME.isoformat(), "ok"]
        assert staged in rows, result.stdout
        assert [name, version, str(files), "yes"] in rows, result.stdout
    assert take_snapshot(home) == before, "status is read-only: no file, row or audit entry"


def test_status_json_is_the_spokes_state(
    airlock: Invoke, imported: tuple[SpokeHome, Envelope]
) -> None:
    home, envelope = imported
    result = airlock("spoke", "status", "--home", str(home.path), "--json", passphrase=None)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == read_status(home).to_dict()
    assert report["site_id"] == SITE_ID
    assert report["trusted_roots"] == {"image": 1, "director": 1}
    assert (report["last_sequence"], report["last_bundle_id"]) == (1, envelope.bundle_id)
    assert [(m["model"], m["version"], m["files"]) for m in report["staged_models"]] == [
        ("classifier", "1", 1),
        ("detector", "1", 2),
    ]
    assert report["director_assignments"] == [
        {"model": "classifier", "version": "1", "files": 1, "staged": True},
        {"model": "detector", "version": "1", "files": 2, "staged": True},
    ]


def test_status_shows_an_assignment_whose_files_are_missing_as_not_staged(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    """Someone deleted a staged blob: status must not claim the model is ready."""
    export(hub, SITE_ID, media / "bundle-1")
    import_bundle(spoke, media / "bundle-1", spoke_clock())
    with Session(spoke.engine) as session:
        assigned = session.exec(select(DirectorAssignment)).all()
    [classifier_blob] = [a.sha256 for a in assigned if a.model == "classifier"]
    (spoke.blob_dir / classifier_blob).unlink()
    result = airlock("spoke", "status", "--home", str(spoke.path), "--json", passphrase=None)
    staged = {a["model"]: a["staged"] for a in json.loads(result.stdout)["director_assignments"]}
    assert staged == {"classifier": False, "detector": True}
    rows = table_rows(airlock("spoke", "status", "--home", str(spoke.path)).stdout)
    assert ["classifier", "1", "1", "no"] in rows and ["detector", "1", "2", "yes"] in rows


def test_status_shows_revoked_and_rolled_back_versions(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    import_bundle(spoke, media / "bundle-1", spoke_clock())
    revoke(hub, "detector", "1", "wrong boxes at night")
    export(hub, SITE_ID, media / "bundle-2")
    import_bundle(spoke, media / "bundle-2", spoke_clock())
    when = SPOKE_TIME.isoformat()
    with session_scope(spoke.engine) as session:  # as the rollout engine leaves it
        session.add(
            Rollout(id="r1", model="classifier", version="1", state="rolled-back",
                    created_at=when, updated_at=when)
        )  # fmt: skip

    report = json.loads(airlock("spoke", "status", "--home", str(spoke.path), "--json").stdout)
    [revoked] = report["revoked"]
    assert (revoked["model"], revoked["version"], revoked["reason"]) == (
        "detector",
        "1",
        "wrong boxes at night",
    )
    assert revoked["revoked_at"]
    assert report["rolled_back"] == [
        {"model": "classifier", "version": "1", "rolled_back_at": when}
    ]
    staged = {m["model"]: m for m in report["staged_models"]}
    assert staged["detector"]["revoked"] == {
        "reason": "wrong boxes at night",
        "revoked_at": revoked["revoked_at"],
    }
    assert staged["detector"]["rolled_back_at"] is None
    assert staged["classifier"]["revoked"] is None
    assert staged["classifier"]["rolled_back_at"] == when

    result = airlock("spoke", "status", "--home", str(spoke.path))
    rows = table_rows(result.stdout)
    assert any(r[:2] == ["detector", "1"] and r[-1].startswith("REVOKED") for r in rows), rows
    assert ["detector", "1", revoked["revoked_at"], "wrong boxes at night"] in rows
    assert any(r[:2] == ["classifier", "1"] and r[-1] == f"rolled back {when}" for r in rows)


@pytest.mark.parametrize("kind", ["empty-directory", "hub-home"])
def test_status_of_something_that_is_not_a_spoke_home(
    airlock: Invoke, world: World, tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "elsewhere"
    if kind == "hub-home":
        home = world.hub_template
    else:
        home.mkdir()
    result = airlock("spoke", "status", "--home", str(home), passphrase=None)
    assert result.exit_code == 3
    if kind == "hub-home":
        assert_error_output(result.stderr, "is a hub home, not a spoke home")
    else:
        assert_error_output(result.stderr, "is not an initialised spoke home")
        assert "airlock spoke init" in result.stderr
