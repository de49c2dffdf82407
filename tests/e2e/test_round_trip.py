"""Hub to site and back to the auditors: export, import, stage, status, audit — all real."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from helpers.spokeenv import (
    SITE_ID,
    SPOKE_TIME,
    World,
    accept_import,
    sha256_file,
    spoke_clock,
)

from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.hub.context import HubContext, load_site_metadata
from airlock.hub.export import assign, export
from airlock.spoke.site import SpokeHome
from airlock.spoke.status import read_status


def staged_digests(home: SpokeHome) -> dict[str, str]:
    """Staged blob name → SHA-256 of its bytes, recomputed from the files."""
    return {p.name: sha256_file(p) for p in home.blob_dir.iterdir()}


def test_round_trip_stages_the_model_files_byte_for_byte(
    world: World, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    envelope = export(hub, SITE_ID, media / "bundle-1")
    result = accept_import(spoke, media / "bundle-1")

    assert (result.bundle_id, result.sequence) == (envelope.bundle_id, 1)
    assert sorted(result.staged) == ["classifier@1", "detector@1"]
    assert result.assigned == result.staged and result.already_staged == []

    expected = world.source_digests("classifier@1", "detector@1")
    assert result.new_blobs == len(expected) == 3
    staged = staged_digests(spoke)
    assert staged == {digest: digest for digest in expected}, "staged blobs are the model files"
    for digest, origin in expected.items():
        ref, filename = origin.rsplit("/", 1)
        source = next(f for f in world.sources[ref].files() if f.name == filename)
        assert (spoke.blob_dir / digest).read_bytes() == source.read_bytes()

    status = read_status(spoke).to_dict()
    assert status["site_id"] == SITE_ID
    assert status["trusted_roots"] == {"image": 1, "director": 1}
    assert (status["last_sequence"], status["last_bundle_id"]) == (1, envelope.bundle_id)
    assert status["time_floor"] == envelope.created.isoformat()  # a signed time, not the clock
    assert (
        status["director_targets_version"]
        == load_site_metadata(hub, SITE_ID).targets.signed.version
    )
    sizes = {ref: sum(f.stat().st_size for f in s.files()) for ref, s in world.sources.items()}
    assert [
        (m["model"], m["version"], m["files"], m["bytes"]) for m in status["staged_models"]
    ] == [
        ("classifier", "1", 1, sizes["classifier@1"]),
        ("detector", "1", 2, sizes["detector@1"]),
    ]
    assert status["director_assignments"] == [
        {"model": "classifier", "version": "1", "files": 1, "staged": True},
        {"model": "detector", "version": "1", "files": 2, "staged": True},
    ]

    hub_report, spoke_report = verify_engine(hub.engine), verify_engine(spoke.engine)
    assert hub_report.ok and spoke_report.ok
    hub_export = [e for e in AuditLog(hub.engine, "hub").entries() if e.action == "hub.export"]
    assert [json.loads(e.details)["bundle_id"] for e in hub_export] == [envelope.bundle_id]
    spoke_log = AuditLog(spoke.engine, "spoke").entries()
    assert [(e.action, e.outcome) for e in spoke_log] == [
        ("spoke.init", "success"),
        ("spoke.import", "success"),
    ]
    details = json.loads(spoke_log[-1].details)
    assert (details["sequence"], sorted(details["staged"])) == (1, ["classifier@1", "detector@1"])


def test_the_next_bundle_moves_the_assignment_and_keeps_what_is_staged(
    world: World, hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    accept_import(spoke, media / "bundle-1")
    assign(hub, SITE_ID, "classifier", "2")
    hub_clock.advance(dt.timedelta(minutes=10))
    second = export(hub, SITE_ID, media / "bundle-2")

    result = accept_import(
        spoke, media / "bundle-2", spoke_clock(SPOKE_TIME + dt.timedelta(hours=1))
    )

    assert (result.sequence, result.staged, result.already_staged) == (
        2,
        ["classifier@2"],
        ["detector@1"],
    )
    assert result.new_blobs == 1
    assert staged_digests(spoke) == {
        d: d for d in world.source_digests("classifier@1", "classifier@2", "detector@1")
    }
    status = read_status(spoke)
    assert (status.last_sequence, status.last_bundle_id) == (2, second.bundle_id)
    assert [(m["model"], m["version"]) for m in status.staged] == [
        ("classifier", "1"),
        ("classifier", "2"),
        ("detector", "1"),
    ]
    assert [(a["model"], a["version"], a["staged"]) for a in status.assigned] == [
        ("classifier", "2", True),
        ("detector", "1", True),
    ]
    assert status.time_floor == second.created.isoformat()
    assert verify_engine(hub.engine).ok and verify_engine(spoke.engine).ok
