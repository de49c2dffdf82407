"""``airlock spoke node enroll | list | remove``: the site admin decides which nodes are served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.spokeenv import Invoke
from securesystemslib.signer import Signer
from sqlmodel import Session, select

from airlock.bundles.audit import verify_engine
from airlock.bundles.errors import (
    ConflictError,
    MissingFileError,
    NotFoundError,
    SecretError,
    UsageError,
)
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import AgentBootstrap, NodeIdentity
from airlock.bundles.tuf import IMAGE
from airlock.spoke import director as site_director
from airlock.spoke.site import EnrolledNode, SiteDirectorFile, SpokeHome, TrustedMetadataFile

URL = "https://spoke.plant-7:8750"


def identity_file(directory: Path, node_id: str) -> tuple[Path, Signer]:
    signer = generate_signer()
    path = directory / f"{node_id}-{signer.public_key.keyid[:8]}.json"
    path.write_text(json.dumps(NodeIdentity(node_id, signer.public_key).to_dict()))
    return path, signer


def enroll_args(home: SpokeHome, identity: Path, out: Path, *extra: str) -> list[str]:
    return [
        "spoke",
        "node",
        "enroll",
        "--home",
        str(home.path),
        "--identity",
        str(identity),
        "--url",
        URL,
        "--out",
        str(out),
        *extra,
    ]


def enrolled_rows(home: SpokeHome) -> list[dict[str, Any]]:
    with Session(home.engine) as session:
        return [row.model_dump() for row in session.exec(select(EnrolledNode))]


def audit_of(home: SpokeHome, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e.outcome, e.node, json.loads(e.details))
        for e in home.audit.entries()
        if e.action == action
    ]


def test_enroll_writes_a_bootstrap_with_the_spokes_roots(
    fleet_spoke: SpokeHome, airlock: Invoke, tmp_path: Path
) -> None:
    identity, signer = identity_file(tmp_path, "node-1")
    out = tmp_path / "agent-bootstrap.json"
    result = airlock(*enroll_args(fleet_spoke, identity, out, "--label", "ring=canary", "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"enrolled": "node-1", "bootstrap": str(out)}
    bootstrap = AgentBootstrap.from_dict(json.loads(out.read_text()))
    with Session(fleet_spoke.engine) as session:
        image_root = session.get(TrustedMetadataFile, (IMAGE, "root.json"))
        assert image_root is not None
        assert bootstrap.image_root.encode() == bytes(image_root.data)
        assert bootstrap.site_root.encode() == site_director.site_root(session)
    assert (bootstrap.site_id, bootstrap.node_id, bootstrap.spoke_url) == ("plant-7", "node-1", URL)
    (row,) = enrolled_rows(fleet_spoke)
    assert row["keyid"] == signer.public_key.keyid and row["labels"] == {"ring": "canary"}
    assert row["enrolled_by"] == "site-admin" and row["removed_at"] == ""
    ((outcome, node, details),) = audit_of(fleet_spoke, "spoke.node.enroll")
    assert (outcome, node, details["keyid"]) == ("success", "node-1", signer.public_key.keyid)
    assert [e.principal for e in fleet_spoke.audit.entries()][-1] == "site-admin"
    listed = airlock("spoke", "node", "list", "--home", str(fleet_spoke.path), "--json")
    (info,) = json.loads(listed.stdout)
    assert (info["node_id"], info["status"], info["last_report"]) == ("node-1", "enrolled", "")
    human = airlock("spoke", "node", "list", "--home", str(fleet_spoke.path))
    assert "node-1" in human.stdout and "ring=canary" in human.stdout


def test_enrolling_the_same_id_with_another_key_is_refused(
    fleet_spoke: SpokeHome, airlock: Invoke, tmp_path: Path
) -> None:
    first, _ = identity_file(tmp_path, "node-1")
    assert airlock(*enroll_args(fleet_spoke, first, tmp_path / "a.json")).exit_code == 0
    before = enrolled_rows(fleet_spoke)
    other, _ = identity_file(tmp_path, "node-1")
    out = tmp_path / "b.json"
    result = airlock(*enroll_args(fleet_spoke, other, out))
    assert result.exit_code == ConflictError.exit_code
    assert "already enrolled with another key" in result.stderr
    assert "airlock spoke node remove" in result.stderr
    assert enrolled_rows(fleet_spoke) == before and not out.exists()
    outcomes = [(o, n) for o, n, _ in audit_of(fleet_spoke, "spoke.node.enroll")]
    assert outcomes == [("success", "node-1"), ("refused", "node-1")]
    # the same key again: unchanged, and the bootstrap is written again
    again = airlock(*enroll_args(fleet_spoke, first, out))
    assert again.exit_code == 0 and out.exists()
    assert enrolled_rows(fleet_spoke) == before
    assert audit_of(fleet_spoke, "spoke.node.enroll")[-1][2]["unchanged"] is True
    assert verify_engine(fleet_spoke.engine).ok


def test_enroll_failures_change_nothing(
    fleet_spoke: SpokeHome, airlock: Invoke, tmp_path: Path
) -> None:
    identity, _ = identity_file(tmp_path, "node-1")
    out = tmp_path / "out.json"
    no_secret = airlock(*enroll_args(fleet_spoke, identity, out), passphrase=None, input="")
    assert no_secret.exit_code == SecretError.exit_code, no_secret.output
    wrong = airlock(*enroll_args(fleet_spoke, identity, out), passphrase="not the passphrase")
    assert wrong.exit_code == SecretError.exit_code
    bad_label = airlock(*enroll_args(fleet_spoke, identity, out, "--label", "nolabel"))
    assert bad_label.exit_code == UsageError.exit_code and "KEY=VALUE" in bad_label.stderr
    missing = airlock(*enroll_args(fleet_spoke, tmp_path / "nope.json", out))
    assert missing.exit_code == MissingFileError.exit_code == 5
    bad_url = list(enroll_args(fleet_spoke, identity, out))
    bad_url[bad_url.index(URL)] = "ftp://spoke"
    assert airlock(*bad_url).exit_code == UsageError.exit_code
    assert enrolled_rows(fleet_spoke) == [] and not out.exists()
    with Session(fleet_spoke.engine) as session:
        assert session.exec(select(SiteDirectorFile)).first() is None
    outcomes = [o for o, _, _ in audit_of(fleet_spoke, "spoke.node.enroll")]
    assert len(outcomes) == 5 and "success" not in outcomes


def test_remove_node(fleet_spoke: SpokeHome, airlock: Invoke, tmp_path: Path) -> None:
    identity, _ = identity_file(tmp_path, "node-1")
    assert airlock(*enroll_args(fleet_spoke, identity, tmp_path / "b.json")).exit_code == 0
    home = str(fleet_spoke.path)
    result = airlock("spoke", "node", "remove", "node-1", "--home", home, "--reason", "stolen")
    assert result.exit_code == 0, result.output
    (row,) = enrolled_rows(fleet_spoke)
    assert row["removed_at"] != ""
    assert audit_of(fleet_spoke, "spoke.node.remove") == [
        ("success", "node-1", {"keyid": row["keyid"], "reason": "stolen"})
    ]
    listed = json.loads(airlock("spoke", "node", "list", "--home", home, "--json").stdout)
    assert listed[0]["status"] == "removed"
    again = airlock("spoke", "node", "remove", "node-1", "--home", home, "--reason", "x")
    assert again.exit_code == NotFoundError.exit_code and "not enrolled" in again.stderr
    assert audit_of(fleet_spoke, "spoke.node.remove")[-1][0] == "refused"
    # a removed node may be enrolled again (new hardware, new key)
    replacement, signer = identity_file(tmp_path, "node-1")
    assert airlock(*enroll_args(fleet_spoke, replacement, tmp_path / "c.json")).exit_code == 0
    (row,) = enrolled_rows(fleet_spoke)
    assert row["removed_at"] == "" and row["keyid"] == signer.public_key.keyid
