"""Signed checkpoints and offline inclusion proofs, from a real hub export to an auditor.

The hub signs a checkpoint on every export; ``airlock audit prove`` writes a
proof of one entry; ``airlock audit verify-proof`` checks it in a directory
holding only the proof, the checkpoint and the public key, in a separate
process. Altering any of the three fails with its documented exit code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE
from helpers.spokeenv import SITE_ID, SITE_PASSPHRASE, run_airlock
from securesystemslib.signer import CryptoSigner
from sqlalchemy import text

from airlock.bundles.audit import KEY_FILE, KEY_PEM, AuditLog, get_checkpoint
from airlock.bundles.cli import main
from airlock.bundles.intoto import public_key_pem
from airlock.hub.context import HubContext
from airlock.hub.export import export
from airlock.spoke.site import SpokeHome


def airlock(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"AIRLOCK_PRINCIPAL": "auditor", **env})


def test_every_export_writes_a_checkpoint_that_covers_it(hub: HubContext, media: Path) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    entries = AuditLog(hub.engine, "hub").entries()
    export_entry = next(e for e in entries if e.action == "hub.export")
    assert [e.action for e in entries[-2:]] == ["hub.export", "audit.checkpoint"]
    checkpoint = get_checkpoint(hub.engine)
    assert checkpoint.size == entries[-1].seq > export_entry.seq
    assert checkpoint.origin.startswith("airlock/hub/")
    published = json.loads((hub.home.root / KEY_FILE).read_text())
    assert published["origin"] == checkpoint.origin
    assert published["uri"] == "airlock-file:online-keys/audit-checkpoint.pem"
    assert "PRIVATE" not in (hub.home.root / KEY_PEM).read_text()

    export(hub, SITE_ID, media / "bundle-2")
    result = airlock("audit", "verify", "--home", str(hub.home.root), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["checkpoints_checked"] == 2
    assert report["latest_checkpoint"]["size"] == report["entries"]


def test_a_proof_made_at_the_hub_verifies_with_only_three_files(
    hub: HubContext, media: Path, tmp_path: Path
) -> None:
    envelope = export(hub, SITE_ID, media / "bundle-1")
    seq = next(e.seq for e in AuditLog(hub.engine, "hub").entries() if e.action == "hub.export")
    made = airlock(
        "audit", "prove", "--home", str(hub.home.root), str(seq),
        "--out", str(tmp_path / "out" / "proof.json"), "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    files = json.loads(made.output)

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    for name, path in (("proof.json", files["proof"]), ("note.txt", files["checkpoint"])):
        shutil.copyfile(path, auditor / name)
    shutil.copyfile(hub.home.root / KEY_PEM, auditor / "key.pem")
    hub.close()
    shutil.rmtree(hub.home.root)  # nothing of the hub is left

    args = ("audit", "verify-proof", "--proof", "proof.json", "--checkpoint", "note.txt")
    proc = run_airlock(*args, "--key", "key.pem", "--json", passphrase=None, cwd=auditor)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["entry"]["action"] == "hub.export" and shown["seq"] == seq
    assert shown["entry"]["bundle_id"] == envelope.bundle_id

    proof = json.loads((auditor / "proof.json").read_text())
    note = (auditor / "note.txt").read_text()

    def check(proof_data: dict[str, object], note_text: str, key: str = "key.pem") -> Result:
        (auditor / "p.json").write_text(json.dumps(proof_data))
        (auditor / "n.txt").write_text(note_text)
        return airlock(
            "audit", "verify-proof", "--proof", str(auditor / "p.json"),
            "--checkpoint", str(auditor / "n.txt"), "--key", str(auditor / key),
        )  # fmt: skip

    assert check(proof, note).exit_code == 0
    forged = proof | {"entry": proof["entry"].replace('"success"', '"failure"')}
    assert check(forged, note).exit_code == 12
    path = list(proof["inclusion_path"])
    path[0] = path[-1]
    assert check(proof | {"inclusion_path": path}, note).exit_code == 12
    assert check(proof | {"leaf_index": proof["leaf_index"] + 1}, note).exit_code == 12
    size = proof["tree_size"]
    bad_note = note.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    assert check(proof | {"tree_size": size + 1}, bad_note).exit_code == 11
    (auditor / "other.pem").write_bytes(public_key_pem(CryptoSigner.generate_ed25519().public_key))
    refused = check(proof, note, "other.pem")
    assert refused.exit_code == 11 and "not signed by the expected key" in refused.output
    assert check({"format": "something else"}, note).exit_code == 5


def test_on_demand_checkpoints_and_a_tampered_hub_log(hub: HubContext, media: Path) -> None:
    home = str(hub.home.root)
    export(hub, SITE_ID, media / "bundle-1")
    made = airlock(
        "audit", "checkpoint", "--home", home, "--json", AIRLOCK_HUB_PASSPHRASE=HUB_PASSPHRASE
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["size"] == AuditLog(hub.engine, "hub").count()

    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET principal = 'mallory' WHERE action = 'hub.export'"))
    seq = next(e.seq for e in AuditLog(hub.engine, "hub").entries() if e.action == "hub.export")
    result = airlock("audit", "verify", "--home", home, "--json")
    assert result.exit_code == 10
    report = json.loads(result.stdout)
    assert (report["ok"], report["kind"], report["first_bad_seq"]) == (False, "modified", seq)
    human = airlock("audit", "verify", "--home", home)
    assert human.exit_code == 10 and f"at entry {seq} (modified)" in human.output


@pytest.mark.parametrize("passphrase", [SITE_PASSPHRASE, "wrong passphrase"])
def test_a_spoke_signs_checkpoints_with_its_site_key(spoke: SpokeHome, passphrase: str) -> None:
    home = str(spoke.path)
    result = airlock(
        "audit", "checkpoint", "--home", home, "--json", AIRLOCK_SPOKE_PASSPHRASE=passphrase
    )
    last = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert last.action == "audit.checkpoint" and last.site == spoke.site_id
    if passphrase != SITE_PASSPHRASE:
        assert result.exit_code == 4 and last.outcome == "failure"
        with pytest.raises(Exception, match="no audit checkpoint yet"):
            get_checkpoint(spoke.engine)
        return
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["origin"] == f"airlock/spoke/{spoke.site_id}" and made["size"] == last.seq
    published = json.loads((spoke.path / KEY_FILE).read_text())
    assert published["keyid"] == spoke.signing_key().keyid
    assert airlock("audit", "verify", "--home", home).exit_code == 0


def test_a_wrong_hub_passphrase_makes_no_checkpoint_key(hub: HubContext) -> None:
    home = hub.home.root
    result = airlock(
        "audit", "checkpoint", "--home", str(home), AIRLOCK_HUB_PASSPHRASE="not the hub's"
    )
    assert result.exit_code == 4 and "does not open the hub's online keys" in result.output
    assert (
        not (home / KEY_FILE).exists() and not (home / "online-keys/audit-checkpoint.pem").exists()
    )
    last = AuditLog(hub.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("audit.checkpoint", "failure")
