"""``airlock spoke import`` of a format-2 bundle: several media, --status, --abandon, receipts.

What the site admin and the security officer see on the command line: the
refusal of an incomplete import (exit 9, naming the volumes), ``--status``,
``--abandon``, ``--json`` (one document on standard output, progress lines on
standard error), and the signed receipt that ``airlock audit verify-receipt``
checks.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from helpers.spokeenv import Invoke, World, assert_error_output
from helpers.v2env import big_bundle, state_of

from airlock.bundles.audit import AuditLog
from airlock.hub.context import HubContext
from airlock.spoke.site import IDENTITY_FILE, SpokeHome


def test_incomplete_then_status_then_complete_with_a_receipt(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    data = bundle.data_volumes()
    first, second = bundle.scatter(tmp_path / "couriers", [data[:-1], data[-1:]])
    home = str(spoke.path)

    result = airlock("spoke", "import", "--home", home, str(first))
    assert result.exit_code == 9, result.stderr
    assert_error_output(result.stderr, f"volume {data[-1].number} of {len(data)}")
    assert data[-1].name in result.stderr and result.stdout == ""

    result = airlock("spoke", "import", "--home", home, "--status", str(second))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"pending import of full bundle {bundle.envelope.bundle_id}")
    assert f"  {data[0].label}: verified" in lines
    assert f"  {data[-1].label}: on the given media, not read yet" in lines

    result = airlock("spoke", "import", "--home", home, "--status", "--json")
    [pending] = json.loads(result.stdout)["pending"]
    states = {v["name"]: v["state"] for v in pending["volumes"]}
    assert states[data[-1].name] == "missing"
    assert pending["needed"] == [f"all of: {data[-1].label}"]

    receipt = tmp_path / "receipt.json"
    result = airlock(
        "spoke", "import", "--home", home, "--json", "--receipt", str(receipt), str(second)
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one document
    assert document["volumes"]["read"] == [data[-1].name]
    progress = [json.loads(line) for line in result.stderr.splitlines()]
    assert progress and all(set(p) == {"progress"} for p in progress)
    assert stat.S_IMODE(receipt.stat().st_mode) == 0o644
    assert json.loads(receipt.read_bytes()) == document["receipt"]

    identity = spoke.path / IDENTITY_FILE
    result = airlock("audit", "verify-receipt", str(receipt), "--key", str(identity))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("receipt verified: signed by site plant-7's key")
    assert bundle.envelope.bundle_id in result.stdout
    assert f"resumed              {', '.join(v.name for v in data[:-1])}" in result.stdout
    result = airlock("audit", "verify-receipt", str(receipt), "--home", home, "--json")
    verified = json.loads(result.stdout)
    assert verified["ok"] and verified["receipt"]["bundle_id"] == bundle.envelope.bundle_id

    entry = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert json.loads(entry.details)["receipt"] == document["receipt"]


def test_a_tampered_receipt_is_refused(
    airlock: Invoke, world: World, hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    receipt = tmp_path / "receipt.json"
    result = airlock(
        "spoke", "import", "--home", str(spoke.path), "--receipt", str(receipt), str(bundle.root)
    )
    assert result.exit_code == 0, result.stderr
    assert f"signed receipt written to {receipt}" in result.stdout
    identity = str(spoke.path / IDENTITY_FILE)

    doc = json.loads(receipt.read_bytes())
    doc["signed"]["volumes"]["rebuilt"] = ["0000000000000000-data-001-of-001.age"]
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    result = airlock("audit", "verify-receipt", str(altered), "--key", identity)
    assert result.exit_code == 11
    assert_error_output(result.stderr, "not signed by the site key")

    theirs = tmp_path / "plant-9.json"
    theirs.write_text(json.dumps(world.other_site.identity.to_dict()))
    result = airlock("audit", "verify-receipt", str(receipt), "--key", str(theirs))
    assert result.exit_code == 11, "another site's key verified this site's receipt"

    (tmp_path / "junk.json").write_text('{"signed": {}, "signatures": []}')
    result = airlock("audit", "verify-receipt", str(tmp_path / "junk.json"), "--key", identity)
    assert result.exit_code == 11


def test_receipt_file_is_never_overwritten_and_nothing_is_imported(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    receipt = tmp_path / "receipt.json"
    receipt.write_text("kept")
    before = AuditLog(spoke.engine, "spoke").count()
    result = airlock(
        "spoke", "import", "--home", str(spoke.path), "--receipt", str(receipt), str(bundle.root)
    )
    assert result.exit_code == 3
    assert_error_output(result.stderr, "already exists")
    assert receipt.read_text() == "kept"
    assert AuditLog(spoke.engine, "spoke").count() == before


def test_abandon_from_the_command_line(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    home = str(spoke.path)
    result = airlock("spoke", "import", "--home", home, "--abandon")
    assert result.exit_code == 3
    assert_error_output(result.stderr, "no pending import")

    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    bundle.path(bundle.data_volumes()[0]).unlink()
    result = airlock("spoke", "import", "--home", home, "--json", str(bundle.root))
    assert result.exit_code == 9
    document = json.loads(result.stdout)
    assert document["error"]["kind"] == "incomplete" and document["error"]["code"] == 9
    assert {v["state"] for v in document["volumes"]} >= {"missing", "verified"}

    result = airlock("spoke", "import", "--home", home, "--abandon", bundle.envelope.bundle_id)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        f"abandoned the pending import of bundle {bundle.envelope.bundle_id}"
    )
    assert state_of(spoke) == []
    result = airlock("spoke", "import", "--home", home, "--status")
    assert result.stdout == "no pending import\n"


def test_usage_errors(airlock: Invoke, spoke: SpokeHome, tmp_path: Path) -> None:
    home = str(spoke.path)
    result = airlock("spoke", "import", "--home", home)
    assert result.exit_code == 2 and "Missing argument 'BUNDLE'" in result.stderr
    result = airlock("spoke", "import", "--home", home, "--status", "--abandon")
    assert result.exit_code == 2
    result = airlock("spoke", "import", "--home", home, "--abandon", "not a bundle id")
    assert result.exit_code == 3
