"""Rotation and revocation ceremonies: root N+1 signed by the old and the new keys, or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.ceremonyflow import Flow, finish, keygen, propose_all, run_ceremony, sign, start, tree

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import SignatureError, UsageError
from airlock.bundles.tuf import load_roots, verify_root_chain
from airlock.ceremony.coordinator import finalize, verify_transcript
from airlock.ceremony.documents import load_history
from airlock.ceremony.officer import read_offer


def keyid_of(flow: Flow, officer: str, role: str) -> str:
    offer, _raw = read_offer(flow.offers[officer])
    return offer.key_for(role).keyid


def rotation(base: Path, clock: Any, first: Flow, new_keys: dict[str, list[str]]) -> Flow:
    """A rotation ceremony up to the request, officers re-using their other keys."""
    flow = start(base, clock, "rotation")
    for officer in flow.officers:
        keygen(flow, officer, new_roles=new_keys.get(officer, []))
    return flow


def test_revoking_a_key_removes_it_from_every_role(tmp_path: Path, flow_clock: Any) -> None:
    first = run_ceremony(tmp_path, flow_clock, "first")
    revoked = keyid_of(first, "bob", "image-root")
    flow = rotation(tmp_path, flow_clock, first, {"bob": ["image-root"]})
    propose_all(flow, rotate_from=first.out(), revoke=[revoked])
    seen: list[dict[str, Any]] = []
    sign(flow, "alice", seen=seen)
    sign(flow, "bob")
    sign(flow, "carol")
    finish(flow)

    changes = next(f for f in seen[0]["files"] if f["file"] == "image/2.root.json")["changes"]
    assert "version 1 -> 2" in changes
    assert any(line.startswith("root: - key") for line in changes)
    assert any(line.startswith("root: + key") for line in changes)
    assert seen[0]["revoked"][0]["keyid"] == revoked

    history = load_history(flow.out())
    new_root = history.image.current.signed
    assert new_root.version == 2
    assert revoked not in new_root.keys
    assert keyid_of(flow, "bob", "image-root") in new_root.roles["root"].keyids
    for repository in tufrepo.REPOSITORIES:  # every version from 1, chained
        roots = load_roots(flow.out() / repository)
        assert [md.signed.version for md in roots] == [1, 2]
        verify_root_chain(repository, roots)
    old_root = load_history(first.out()).image.current
    assert (flow.out() / "image/1.root.json").read_bytes() == tufrepo.to_bytes(old_root)
    assert load_history(flow.out()).image_targets.signed.version == 2
    assert json.loads((flow.out() / "ceremony.json").read_text())["revoked"] == [revoked]
    assert verify_transcript(flow.out()).ok


def test_a_revoked_key_cannot_be_offered_again(tmp_path: Path, flow_clock: Any) -> None:
    first = run_ceremony(tmp_path, flow_clock, "first")
    revoked = keyid_of(first, "bob", "image-root")
    flow = rotation(tmp_path, flow_clock, first, {})
    with pytest.raises(UsageError, match="bob offered the revoked key"):
        propose_all(flow, rotate_from=first.out(), revoke=[revoked])
    assert not flow.workspace.request_file.exists()


def test_only_keys_of_the_current_roots_can_be_revoked(tmp_path: Path, flow_clock: Any) -> None:
    first = run_ceremony(tmp_path, flow_clock, "first")
    flow = rotation(tmp_path, flow_clock, first, {})
    with pytest.raises(UsageError, match="nothing to revoke"):
        propose_all(flow, rotate_from=first.out(), revoke=["ab" * 32])


def test_a_rotation_needs_a_threshold_of_the_old_root_keys(tmp_path: Path, flow_clock: Any) -> None:
    first = run_ceremony(tmp_path, flow_clock, "first")
    old_keys = {keyid_of(first, o, "image-root") for o in first.officers}
    flow = rotation(tmp_path, flow_clock, first, {o: ["image-root"] for o in first.officers})
    propose_all(flow, rotate_from=first.out())
    for officer in flow.officers:
        sign(flow, officer)
        doc = json.loads(flow.signatures[officer].read_text())
        doc["signatures"] = [s for s in doc["signatures"] if s["keyid"] not in old_keys]
        flow.signatures[officer].write_text(json.dumps(doc))  # only the new keys signed
    before = tree(first.out())
    with pytest.raises(SignatureError, match="current Image root's root keys"):
        finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    assert not flow.out().exists()
    assert tree(first.out()) == before


def test_two_rotations_chain_from_version_one(tmp_path: Path, flow_clock: Any) -> None:
    first = run_ceremony(tmp_path, flow_clock, "first")
    second = run_ceremony(
        tmp_path, flow_clock, "second", rotate_from=first.out(), new_keys={"alice": ["image-root"]}
    )
    third = run_ceremony(
        tmp_path,
        flow_clock,
        "third",
        rotate_from=second.out(),
        new_keys={"carol": ["director-root"]},
    )
    for repository in tufrepo.REPOSITORIES:
        roots = load_roots(third.out() / repository)
        assert [md.signed.version for md in roots] == [1, 2, 3]
        verify_root_chain(repository, roots)
    assert verify_transcript(third.out()).ok
