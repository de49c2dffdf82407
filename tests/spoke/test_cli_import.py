"""``airlock spoke import``: what the site admin sees, in JSON and as text, and when it fails."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import onnxruntime
from helpers.bundlecraft import flip_byte
from helpers.fleetenv import Fleet
from helpers.spokeenv import (
    SITE_ID,
    Invoke,
    World,
    assert_error_output,
    assert_refused_unchanged,
    take_snapshot,
)

from airlock.bundles.audit import AuditLog, verify_receipt
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import IntegrityError, MediaError, SecretError
from airlock.hub.context import HubContext
from airlock.hub.export import assign, export
from airlock.hub.revocation import revoke
from airlock.spoke.site import SpokeHome
from airlock.spoke.status import read_status

GRAPHS = {"classifier@1": "classifier.onnx", "detector@1": "model.onnx"}


def nothing_signed(ref: str) -> dict[str, object]:
    """The gate's figures for a version released without a validation set or compatibility."""
    load = {"onnxruntime": onnxruntime.__version__, "graphs": [GRAPHS[ref]]}
    return {
        "outcome": "passed",
        "compatibility": "not signed",
        "validation": "not signed",
        "load": load,
    }


def test_import_json_reports_what_was_staged(
    airlock: Invoke, world: World, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    envelope = export(hub, SITE_ID, media / "bundle-1")
    result = airlock(
        "spoke", "import", "--home", str(spoke.path), "--json", str(media / "bundle-1")
    )
    assert result.exit_code == 0, result.stderr
    progress = [json.loads(line) for line in result.stderr.splitlines()]
    assert progress and all(list(line) == ["progress"] for line in progress)
    document = json.loads(result.stdout)
    receipt = verify_receipt(
        canonical_bytes(document.pop("receipt")), spoke.signing_key().public_key
    )
    assert (receipt.bundle_id, receipt.sequence, receipt.staged) == (
        envelope.bundle_id,
        1,
        ("classifier@1", "detector@1"),
    )
    assert document == {
        "bundle_id": envelope.bundle_id,
        "sequence": 1,
        "staged": ["classifier@1", "detector@1"],
        "already_staged": [],
        "assigned": ["classifier@1", "detector@1"],
        "new_blobs": len(world.source_digests("classifier@1", "detector@1")),
        "attested": [],
        "gate": {ref: nothing_signed(ref) for ref in ("classifier@1", "detector@1")},
        "volumes": {"read": [v.name for v in envelope.volumes], "rebuilt": [], "resumed": []},
    }
    assert read_status(spoke).last_bundle_id == envelope.bundle_id
    last = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert (last.action, last.outcome, last.principal) == ("spoke.import", "success", "site-admin")


def test_import_asks_for_the_passphrase_and_prints_a_summary(
    airlock: Invoke, hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path
) -> None:
    first = export(hub, SITE_ID, media / "bundle-1")
    assign(hub, SITE_ID, "classifier", "2")
    hub_clock.advance(dt.timedelta(minutes=10))
    second = export(hub, SITE_ID, media / "bundle-2")
    home = str(spoke.path)

    typed = "site test passphrase\n"
    result = airlock(
        "spoke", "import", "--home", home, str(media / "bundle-1"), passphrase=None, input=typed
    )
    assert result.exit_code == 0, result.stderr
    assert "Site passphrase" in result.stderr and "site test passphrase" not in result.stderr
    assert result.stdout.splitlines() == [
        f"imported full bundle {first.bundle_id} (sequence 1): 3 new file(s)",
        "  staged   classifier@1",
        "  staged   detector@1",
        "  volumes read: 1",
    ]

    result = airlock("spoke", "import", "--home", home, str(media / "bundle-2"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"imported delta bundle {second.bundle_id} (sequence 2): 1 new file(s)",
        "  staged   classifier@2",
        "  present  detector@1",
        "  volumes read: 1",
    ]


def test_import_with_a_wrong_passphrase_is_refused_and_audited(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    before = take_snapshot(spoke)
    result = airlock(
        "spoke",
        "import",
        "--home",
        str(spoke.path),
        str(media / "bundle-1"),
        passphrase="not it at all",
    )
    assert_error_output(result.stderr, "wrong passphrase")
    assert "AIRLOCK_SPOKE_PASSPHRASE" in result.stderr
    assert result.stdout == ""
    assert_refused_unchanged(spoke, before, SecretError, exit_code=result.exit_code)


def test_import_of_a_directory_that_is_not_a_bundle(
    airlock: Invoke, spoke: SpokeHome, tmp_path: Path
) -> None:
    before = take_snapshot(spoke)
    result = airlock("spoke", "import", "--home", str(spoke.path), str(tmp_path))
    assert_error_output(result.stderr, "no envelope.json: not an Airlock bundle")
    assert_refused_unchanged(spoke, before, MediaError, exit_code=result.exit_code)


def test_a_refused_import_prints_one_json_error_and_no_result(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    """Scripts that parse ``--json`` get an exit code and one error document, never a result."""
    export(hub, SITE_ID, media / "bundle-1")
    part = media / "bundle-1" / "site.age"  # the file whose SHA-256 the envelope signs
    flip_byte(part, os.path.getsize(part) // 3)
    before = take_snapshot(spoke)
    result = airlock(
        "spoke", "import", "--home", str(spoke.path), "--json", str(media / "bundle-1")
    )
    document = json.loads(result.stdout)
    assert list(document) == ["error"]
    assert document["error"]["kind"] == "integrity"
    assert document["error"]["code"] == result.exit_code == 12
    assert document["error"]["hint"]
    assert_error_output(result.stderr, "does not match the SHA-256 in the signed envelope")
    assert_refused_unchanged(spoke, before, IntegrityError, exit_code=result.exit_code)


def test_import_names_the_versions_a_revocation_bundle_revokes(
    airlock: Invoke, fleet: Fleet, tmp_path: Path
) -> None:
    spoke = fleet.new_spoke(tmp_path / "spoke")
    clock = FixedClock(fleet.hub_time)
    hub = fleet.new_hub(tmp_path / "hub", clock)
    try:
        revoke(hub, "iris", "3", "wrong answers at night")
        clock.advance(dt.timedelta(seconds=30))
        envelope = export(hub, SITE_ID, tmp_path / "revocation")
    finally:
        hub.close()
    result = airlock("spoke", "import", "--home", str(spoke.path), str(tmp_path / "revocation"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"imported revocation bundle {envelope.bundle_id} (sequence {envelope.sequence}): "
        "0 new file(s)",
        "  present  classifier@1",
        "  present  detector@1",
        "  present  iris@2",
        "  revoked  iris@3 (wrong answers at night): the rollout engine moves every node off it",
    ]
    spoke.engine.dispose()
