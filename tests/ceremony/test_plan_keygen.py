"""The plan and key generation on the officers' machines: defaults, validation, proofs, HSM keys."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from helpers.ceremonyflow import (
    Flow,
    audit_entries,
    keygen,
    p256_director_root,
    passphrase_of,
    propose_all,
    secrets_for,
    start,
    tree,
)
from helpers.softhsm import TokenKey
from securesystemslib.signer import Signature

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import (
    FreshnessError,
    IntegrityError,
    SecretError,
    SignatureError,
    UsageError,
)
from airlock.ceremony.documents import (
    DIRECTOR_ROOT,
    IMAGE_ROOT,
    IMAGE_TARGETS,
    LAYOUT,
    load_plan,
    new_plan_text,
    parse_plan,
)
from airlock.ceremony.officer import AUDIT_DB, OFFICER_FILE, proof_payload, read_offer, verify_offer


def test_default_plan_has_the_documented_roles(flow_clock: FixedClock) -> None:
    text = new_plan_text("c-1", "HQ", ["a", "b", "c"], ["w"], flow_clock.now())
    plan = parse_plan(text.encode())
    summary = {
        role: (list(spec.officers), spec.threshold, spec.expiry_days, spec.algorithm)
        for role, spec in plan.roles.items()
    }
    assert summary == {
        IMAGE_ROOT: (["a", "b", "c"], 2, 365, "ed25519"),
        IMAGE_TARGETS: (["a", "b"], 1, 180, "ed25519"),
        DIRECTOR_ROOT: (["a", "b", "c"], 2, 365, "ed25519"),
        LAYOUT: (["a", "b"], 1, 365, "ed25519"),
    }
    assert [w.name for w in plan.witnesses] == ["w"]
    assert plan.valid_until == flow_clock.now().replace(microsecond=0) + dt.timedelta(days=14)
    assert len(plan.nonce) == 64


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("threshold = 2\n", "threshold = 4\n", "threshold 4 with 3 officers"),
        ('officers = ["a", "b"]', 'officers = ["a", "mallory"]', "mallory, who are not officers"),
        ('name = "w"', 'name = "a"', "appears twice among officers and witnesses"),
        ('algorithm = "ed25519"', 'algorithm = "rsa"', "asks for algorithm 'rsa'"),
        ("expiry_days = 180", "expiry_days = 0", "expiry_days 0"),
        ('nonce = "', 'nonce = "zz', "nonce must be"),
    ],
)
def test_an_inconsistent_plan_is_refused(
    flow_clock: FixedClock, old: str, new: str, message: str
) -> None:
    text = new_plan_text("c-1", "HQ", ["a", "b", "c"], ["w"], flow_clock.now())
    assert old in text
    with pytest.raises(UsageError, match=message):
        parse_plan(text.replace(old, new, 1).encode())


def test_keygen_gives_one_encrypted_key_per_role_with_proofs(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    flow = start(tmp_path, flow_clock)
    offer_path = keygen(flow, "alice")
    offer, _raw = read_offer(offer_path)
    plan = load_plan(flow.plan)
    assert [k.role for k in offer.keys] == [IMAGE_ROOT, IMAGE_TARGETS, DIRECTOR_ROOT, LAYOUT]
    assert len({k.ref.keyid for k in offer.keys}) == 4  # a separate key per role
    verify_offer(plan, offer, "offer")
    for key in offer.keys:  # each proof binds ceremony, plan, nonce, officer, role and key
        payload = proof_payload(plan, "alice", key.role, key.ref.keyid)
        key.ref.public_key.verify_signature(Signature(key.ref.keyid, key.proof), payload)
    key_files = sorted((flow.keys("alice") / "keys").iterdir())
    assert len(key_files) == 4
    for path in key_files:
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = passphrase_of("alice").encode()
    everything = [*tree(flow.keys("alice")).values(), offer_path.read_bytes()]
    assert not any(secret in data for data in everything)
    entries = audit_entries(flow.keys("alice"), AUDIT_DB)
    assert [(a, o) for a, o, _d in entries] == [("ceremony.keygen", "success")]
    assert passphrase_of("alice") not in json.dumps(entries)


def test_a_second_keygen_reoffers_the_same_keys_unless_asked(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    first = start(tmp_path, flow_clock, "first")
    old = {k.role: k.ref.keyid for k in read_offer(keygen(first, "bob"))[0].keys}
    second = start(tmp_path, flow_clock, "second")
    again = {
        k.role: k.ref.keyid
        for k in read_offer(keygen(second, "bob", new_roles=[IMAGE_ROOT]))[0].keys
    }
    assert again[IMAGE_ROOT] != old[IMAGE_ROOT]
    assert {r: again[r] for r in again if r != IMAGE_ROOT} == {
        r: old[r] for r in old if r != IMAGE_ROOT
    }


def test_a_wrong_passphrase_changes_nothing_and_is_audited(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    flow = start(tmp_path, flow_clock, "first")
    keygen(flow, "alice")
    before = tree(flow.keys("alice"))
    again = start(tmp_path, flow_clock, "second")
    with pytest.raises(SecretError, match="wrong passphrase"):
        keygen(again, "alice", secrets=lambda _name: "not alice's passphrase")
    assert tree(flow.keys("alice")) == before
    assert not again.media("alice.offer.json").exists()
    last = audit_entries(flow.keys("alice"), AUDIT_DB)[-1]
    assert last[:2] == ("ceremony.keygen", "failure")
    assert "wrong passphrase" in str(last[2]["message"])


def test_an_expired_plan_is_refused_before_any_key_is_made(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    flow = start(tmp_path, flow_clock)
    flow_clock.advance(dt.timedelta(days=15))
    with pytest.raises(FreshnessError, match="expired"):
        keygen(flow, "alice")
    assert not (flow.keys("alice") / OFFICER_FILE).exists()
    assert not list((flow.keys("alice")).glob("keys/*"))
    assert audit_entries(flow.keys("alice"), AUDIT_DB)[-1][:2] == ("ceremony.keygen", "refused")


def _all_offers(flow: Flow) -> None:
    for officer in flow.officers:
        keygen(flow, officer)


def test_propose_refuses_an_offer_whose_proof_does_not_verify(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    flow = start(tmp_path, flow_clock)
    _all_offers(flow)
    doc = json.loads(flow.offers["bob"].read_text())
    doc["keys"][0]["proof"] = doc["keys"][1]["proof"]  # a proof made by another of bob's keys
    flow.offers["bob"].write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="proof of possession of bob's image-root"):
        propose_all(flow)
    assert not flow.workspace.request_file.exists()
    assert not (flow.workspace.directory / "online-keys").exists() or not any(
        (flow.workspace.directory / "online-keys").iterdir()
    )


def test_propose_refuses_an_offer_made_for_another_plan(
    tmp_path: Path, flow_clock: FixedClock
) -> None:
    other = start(tmp_path, flow_clock, "other")
    stray = keygen(other, "carol")
    flow = start(tmp_path, flow_clock)
    _all_offers(flow)
    flow.offers["carol"] = stray
    with pytest.raises(IntegrityError, match="was made for ceremony other"):
        propose_all(flow)
    assert not flow.workspace.request_file.exists()


def test_propose_refuses_a_missing_officer(tmp_path: Path, flow_clock: FixedClock) -> None:
    flow = start(tmp_path, flow_clock)
    _all_offers(flow)
    flow.officers = ("alice", "bob")
    with pytest.raises(UsageError, match="no key offer from carol"):
        propose_all(flow)


@pytest.mark.parametrize(
    ("algorithm", "token_key", "uri", "scheme"),
    [
        ("ecdsa-p256", "carol-p256", "hsm:1?label=officer-carol", "ecdsa-sha2-nistp256"),
        ("ecdsa-p384", "carol-p384", "hsm:2?label=officer-carol", "ecdsa-sha2-nistp384"),
    ],
)
def test_an_hsm_key_is_offered_with_its_proof(
    tmp_path: Path,
    flow_clock: FixedClock,
    softhsm: dict[str, TokenKey],
    algorithm: str,
    token_key: str,
    uri: str,
    scheme: str,
) -> None:
    def director_on_token(text: str) -> str:
        head, _, tail = text.partition("[roles.director-root]")
        return head + "[roles.director-root]" + tail.replace('"ed25519"', f'"{algorithm}"', 1)

    flow = start(tmp_path, flow_clock, edit=director_on_token)
    offer, _raw = read_offer(keygen(flow, "carol", hsm={DIRECTOR_ROOT: softhsm[token_key].slot}))
    director = offer.key_for(DIRECTOR_ROOT)
    assert director.uri == uri
    assert director.public_key.scheme == scheme
    verify_offer(load_plan(flow.plan), offer, "offer")
    assert len(list((flow.keys("carol") / "keys").iterdir())) == 1  # only image-root on file


def test_an_hsm_key_of_the_wrong_curve_is_refused(
    tmp_path: Path, flow_clock: FixedClock, softhsm: dict[str, TokenKey]
) -> None:
    flow = start(tmp_path, flow_clock, edit=p256_director_root)
    with pytest.raises(UsageError, match="the director-root key is ecdsa-p384"):
        keygen(flow, "carol", hsm={DIRECTOR_ROOT: softhsm["carol-p384"].slot})
    assert not flow.media("carol.offer.json").exists()
    assert not list((flow.keys("carol")).glob("keys/*"))


def test_a_wrong_pin_changes_nothing(
    tmp_path: Path, flow_clock: FixedClock, softhsm: dict[str, TokenKey]
) -> None:
    flow = start(tmp_path, flow_clock, edit=p256_director_root)
    with pytest.raises(SecretError, match="the token refused the PIN") as caught:
        keygen(
            flow,
            "carol",
            hsm={DIRECTOR_ROOT: softhsm["carol-p256"].slot},
            secrets=secrets_for("carol", pin="0000-wrong"),
        )
    assert "0000-wrong" not in caught.value.message + (caught.value.hint or "")
    assert not flow.media("carol.offer.json").exists()
    assert not (flow.keys("carol") / OFFICER_FILE).exists()
    assert not list((flow.keys("carol")).glob("keys/*"))  # the file key made first is removed
    assert audit_entries(flow.keys("carol"), AUDIT_DB)[-1][:2] == ("ceremony.keygen", "failure")


def test_offer_round_trips(tmp_path: Path, flow_clock: FixedClock) -> None:
    flow = start(tmp_path, flow_clock)
    offer, raw = read_offer(keygen(flow, "alice"))
    assert json.loads(raw) == offer.to_dict()
