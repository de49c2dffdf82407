"""Review, sign and finalize: what officers see is what they sign; bad signatures change nothing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.ceremonyflow import (
    Flow,
    audit_entries,
    finish,
    keygen,
    p256_director_root,
    propose_all,
    secrets_for,
    sign,
    start,
    tree,
)
from helpers.hubenv import HUB_PASSPHRASE
from helpers.softhsm import TokenKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import (
    ConflictError,
    FreshnessError,
    IntegrityError,
    SecretError,
    SignatureError,
    UsageError,
)
from airlock.bundles.tuf import load_roots, verify_root_chain
from airlock.ceremony.coordinator import AUDIT_DB as WORKSPACE_DB
from airlock.ceremony.coordinator import finalize
from airlock.ceremony.documents import load_ceremony, load_history
from airlock.ceremony.officer import AUDIT_DB, sign_request


def proposed(base: Path, clock: Any, **kwargs: Any) -> Flow:
    """A ceremony up to the signing request."""
    flow = start(base, clock, **kwargs)
    for officer in flow.officers:
        keygen(flow, officer)
    propose_all(flow)
    return flow


def test_the_officer_sees_every_key_threshold_and_expiry(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    seen: list[dict[str, Any]] = []
    sign(flow, "alice", seen=seen, expect_sha256=flow.request_sha256)
    summary = seen[0]
    assert summary["request_sha256"] == flow.request_sha256
    request = json.loads(flow.workspace.request_file.read_bytes())
    assert {k["keyid"] for k in summary["keys"]} == {k["keyid"] for k in request["keys"]}
    files = {item["file"]: item for item in summary["files"]}
    assert set(files) == {"image/1.root.json", "image/1.targets.json", "director/1.root.json"}
    image_root = files["image/1.root.json"]
    assert image_root["roles"]["root"]["threshold"] == 2
    assert len(image_root["roles"]["root"]["keys"]) == 3
    assert image_root["roles"]["targets"]["threshold"] == 1
    assert image_root["roles"]["in-toto layout"]["threshold"] == 1
    assert image_root["expires"] == request["metadata"]["image/1.root.json"]["expires"]
    assert "envelope" in files["director/1.root.json"]["roles"]
    assert {t["role"] for t in summary["you_sign"]} == {
        "image-root",
        "image-targets",
        "director-root",
    }


def test_a_request_altered_after_review_is_not_signed(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    doc = json.loads(flow.workspace.request_file.read_bytes())
    doc["metadata"]["image/1.root.json"]["roles"]["root"]["threshold"] = 1
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="not the announced"):
        sign(flow, "alice", request=altered, expect_sha256=flow.request_sha256)
    assert not flow.media("alice.sig.json").exists()
    assert audit_entries(flow.keys("alice"), AUDIT_DB)[-1][:2] == ("ceremony.sign", "refused")


def test_signatures_over_an_altered_request_do_not_count(tmp_path: Path, flow_clock: Any) -> None:
    """An officer who signed a swapped request cannot have it counted for the real one."""
    flow = proposed(tmp_path, flow_clock)
    doc = json.loads(flow.workspace.request_file.read_bytes())
    doc["metadata"]["image/1.root.json"]["expires"] = "2099-01-01T00:00:00Z"
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    sign(flow, "alice", request=altered)  # no expected hash given: the officer signs it
    sign(flow, "bob")
    with pytest.raises(IntegrityError, match=r"alice\.sig\.json signs a different request"):
        finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    # …and rewriting the file's request hash does not help: the signatures do not verify
    sig = json.loads(flow.signatures["alice"].read_text())
    sig["request_sha256"] = flow.request_sha256
    flow.signatures["alice"].write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not verify"):
        finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    assert not flow.out().exists()
    outcomes = [e[:2] for e in audit_entries(flow.workspace.directory, WORKSPACE_DB)]
    assert outcomes[-2:] == [("ceremony.finalize", "refused")] * 2


def test_a_signature_by_a_key_outside_the_plan_is_refused(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    for officer in flow.officers:
        sign(flow, officer)
    stranger = CryptoSigner.generate_ed25519()
    doc = json.loads(flow.signatures["carol"].read_text())
    request = json.loads(flow.workspace.request_file.read_bytes())
    md = Metadata(Root.from_dict(request["metadata"]["image/1.root.json"]))
    doc["signatures"].append(
        {"file": "image/1.root.json", "keyid": stranger.public_key.keyid,
         "sig": stranger.sign(md.signed_bytes).signature}
    )  # fmt: skip
    flow.signatures["carol"].write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match=r"may not sign image/1\.root\.json"):
        finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    assert not flow.out().exists()


def test_a_threshold_not_met_is_refused(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    sign(flow, "alice")
    with pytest.raises(SignatureError, match="threshold not met") as caught:
        finalize(flow.workspace, [flow.signatures["alice"]], flow.out(), flow.clock)
    assert "image/1.root.json has 1 of the 2 signatures" in caught.value.message
    assert "director/1.root.json has 1 of the 2" in caught.value.message
    assert not flow.out().exists()


def test_a_duplicate_signature_is_not_counted_twice(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    sign(flow, "alice")
    copy = tmp_path / "alice-again.sig.json"
    shutil.copy(flow.signatures["alice"], copy)
    with pytest.raises(UsageError, match="duplicate signature"):
        finalize(flow.workspace, [flow.signatures["alice"], copy], flow.out(), flow.clock)
    assert not flow.out().exists()


def test_an_expired_plan_cannot_be_finalized(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    for officer in flow.officers:
        sign(flow, officer)
    flow_clock.advance(dt.timedelta(days=15))
    with pytest.raises(FreshnessError, match="expired"):
        finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    assert not flow.out().exists()


def test_a_wrong_passphrase_writes_no_signature(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    with pytest.raises(SecretError, match="wrong passphrase"):
        sign(flow, "bob", secrets=lambda _n: "not bob's passphrase")
    assert not flow.media("bob.sig.json").exists()


def test_two_of_three_officers_are_enough(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    sign(flow, "alice")
    sign(flow, "carol")
    finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    for repository in tufrepo.REPOSITORIES:
        roots = load_roots(flow.out() / repository)
        verify_root_chain(repository, roots)
        assert len(roots[-1].signatures) == 2


def test_finalized_output_is_what_the_hub_reads(initial_flow: Flow) -> None:
    history = load_history(initial_flow.out())
    record = load_ceremony(initial_flow.out())
    assert record.ceremony_id == "initial"
    assert set(record.online_keys) == set(history.online_keys)
    assert len(record.offline_keys) == 3 + 2 + 3 + 2
    image_root = history.image.current.signed
    keys, threshold, _expires = tufrepo.layout_keys(image_root)
    assert threshold == 1 and len(keys) == 2
    for path in (initial_flow.out() / "online-keys").iterdir():
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert HUB_PASSPHRASE.encode() not in path.read_bytes()


def test_an_hsm_key_signs_the_director_root(
    tmp_path: Path, flow_clock: Any, softhsm: dict[str, TokenKey]
) -> None:
    flow = start(tmp_path, flow_clock, edit=p256_director_root)
    keygen(flow, "alice")
    keygen(flow, "bob")
    keygen(flow, "carol", hsm={"director-root": softhsm["carol-p256"].slot})
    propose_all(flow)
    for officer in flow.officers:
        sign(flow, officer, secrets=secrets_for(officer))
    finish(flow)
    director_root = load_history(flow.out()).director.current
    carol = next(
        k for k in json.loads(flow.workspace.request_file.read_bytes())["keys"]
        if k["officer"] == "carol" and k["role"] == "director-root"
    )  # fmt: skip
    assert carol["storage"] == "hsm"
    assert carol["keyid"] in director_root.signatures
    tufrepo.check_root_signed(director_root)


def test_another_officers_key_directory_is_refused_and_audited(
    tmp_path: Path, flow_clock: Any
) -> None:
    flow = proposed(tmp_path, flow_clock)
    out = flow.media("bob.sig.json")
    with pytest.raises(ConflictError, match="holds the keys of officer 'alice'"):
        sign_request(
            flow.workspace.request_file,
            flow.plan,
            "bob",
            flow.keys("alice"),
            out,
            secrets=secrets_for("bob"),
            confirm=lambda _summary: True,
            expect_sha256=None,
            clock=flow.clock,
        )
    assert not out.exists()
    assert audit_entries(flow.keys("alice"), AUDIT_DB)[-1][:2] == ("ceremony.sign", "refused")


def test_a_workspace_is_finalized_only_once(tmp_path: Path, flow_clock: Any) -> None:
    flow = proposed(tmp_path, flow_clock)
    for officer in flow.officers:
        sign(flow, officer)
    first = finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    before = tree(flow.workspace.directory)
    again = tmp_path / "second-out"
    flow_clock.advance(dt.timedelta(minutes=5))
    with pytest.raises(ConflictError, match="already finalized") as caught:
        finalize(
            flow.workspace, [flow.signatures["alice"], flow.signatures["bob"]], again, flow.clock
        )
    assert str(flow.out()) in caught.value.message
    assert caught.value.hint
    assert not again.exists()
    assert not list(tmp_path.glob(".second-out.*"))
    assert tree(flow.workspace.directory) == before
    assert load_ceremony(flow.out()).ceremony_id == first.body["ceremony_id"]
    last = audit_entries(flow.workspace.directory, WORKSPACE_DB)[-1]
    assert last[:2] == ("ceremony.finalize", "refused")


def test_a_finalize_that_failed_does_not_block_the_next_one(
    tmp_path: Path, flow_clock: Any
) -> None:
    flow = proposed(tmp_path, flow_clock)
    sign(flow, "alice")
    with pytest.raises(SignatureError, match="threshold not met"):
        finalize(flow.workspace, [flow.signatures["alice"]], flow.out(), flow.clock)
    sign(flow, "bob")
    finalize(flow.workspace, list(flow.signatures.values()), flow.out(), flow.clock)
    assert load_ceremony(flow.out()).ceremony_id == flow.ceremony_id
