"""The minimal key ceremony as a library: keys, roots, record, audit, and all-or-nothing output."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import __version__
from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.bundles.config import load_config
from airlock.bundles.db import make_engine
from airlock.bundles.errors import (
    ConflictError,
    IntegrityError,
    MediaError,
    NotFoundError,
    SecretError,
    UsageError,
)
from airlock.bundles.keys import KeyStore
from airlock.ceremony.minimal import (
    CeremonyOptions,
    CeremonyResult,
    load_ceremony,
    next_root,
    run_minimal_ceremony,
    sign_new_root,
)
from airlock.ceremony.roots import ONLINE_KEY_NAMES

OFFLINE_NAMES = [
    "image-root-1",
    "image-root-2",
    "image-root-3",
    "director-root-1",
    "director-root-2",
    "director-root-3",
    "image-targets-1",
    "image-targets-2",
]
PROBE = b"airlock ceremony test probe"


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: relative path -> (mode, content)."""
    return {
        str(path.relative_to(root)): (path.stat().st_mode, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def load_root(path: Path) -> Metadata[Root]:
    return Metadata[Root].from_bytes(path.read_bytes())


# --- output layout and keys -------------------------------------------------------------


def test_output_layout_is_exactly_what_the_hub_reads(ceremony: CeremonyResult) -> None:
    expected = {
        "airlock.toml",
        "ceremony.json",
        "ceremony-audit.db",
        "image/1.root.json",
        "image/1.targets.json",
        "director/1.root.json",
        *(f"offline-keys/{name}.pem" for name in OFFLINE_NAMES),
        *(f"online-keys/{name}.pem" for name in ONLINE_KEY_NAMES),
    }
    assert set(tree(ceremony.out_dir)) == expected
    # The staging directory was renamed into place: nothing else next to it.
    assert list(ceremony.out_dir.parent.iterdir()) == [ceremony.out_dir]
    assert stat.S_IMODE(ceremony.out_dir.stat().st_mode) == 0o700


def test_every_key_file_is_encrypted_pkcs8_readable_only_by_its_owner(
    ceremony: CeremonyResult,
) -> None:
    pems = sorted(ceremony.out_dir.glob("*-keys/*.pem"))
    assert len(pems) == len(OFFLINE_NAMES) + len(ONLINE_KEY_NAMES)
    for pem in pems:
        assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), pem
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600, pem


def test_key_refs_use_relative_uris_and_distinct_keys(ceremony: CeremonyResult) -> None:
    assert sorted(ceremony.offline_keys) == sorted(OFFLINE_NAMES)
    assert sorted(ceremony.online_keys) == sorted(ONLINE_KEY_NAMES)
    for name, ref in ceremony.offline_keys.items():
        assert ref.uri == f"airlock-file:offline-keys/{name}.pem"
    for name, ref in ceremony.online_keys.items():
        assert ref.uri == f"airlock-file:online-keys/{name}.pem"
    keyids = [
        ref.keyid for ref in [*ceremony.offline_keys.values(), *ceremony.online_keys.values()]
    ]
    assert len(set(keyids)) == len(keyids)


def test_offline_keys_open_only_with_the_officers_passphrase(
    ceremony: CeremonyResult, officer_passphrase: str, hub_passphrase: str
) -> None:
    right = KeyStore(ceremony.out_dir, lambda _: officer_passphrase)
    wrong = KeyStore(ceremony.out_dir, lambda _: hub_passphrase)
    for ref in ceremony.offline_keys.values():
        signature = right.signer(ref).sign(PROBE)
        ref.public_key.verify_signature(signature, PROBE)
        with pytest.raises(SecretError):
            wrong.signer(ref)


def test_online_keys_open_only_with_the_hub_passphrase(
    ceremony: CeremonyResult, officer_passphrase: str, hub_passphrase: str
) -> None:
    signers = ceremony.record.signers(ONLINE_KEY_NAMES, lambda _: hub_passphrase)
    for signer, name in zip(signers, ONLINE_KEY_NAMES, strict=True):
        ceremony.online_keys[name].public_key.verify_signature(signer.sign(PROBE), PROBE)
    with pytest.raises(SecretError):
        ceremony.record.signers(["envelope"], lambda _: officer_passphrase)
    with pytest.raises(SecretError):
        ceremony.record.signers(["envelope"], lambda _: "not the passphrase")


# --- roots and targets ------------------------------------------------------------------


def keyids(ceremony: CeremonyResult, *names: str) -> set[str]:
    return {ceremony.record.key(name).keyid for name in names}


def test_image_root_is_signed_by_all_root_keys_and_needs_two(ceremony: CeremonyResult) -> None:
    md = load_root(ceremony.image_root)
    root = md.signed
    root.verify_delegate("root", md.signed_bytes, md.signatures)
    assert set(md.signatures) == keyids(ceremony, "image-root-1", "image-root-2", "image-root-3")
    assert root.version == 1
    assert root.consistent_snapshot is True
    assert root.roles["root"].threshold == 2
    assert set(root.roles["root"].keyids) == set(md.signatures)
    assert root.roles["targets"].threshold == 1
    assert set(root.roles["targets"].keyids) == keyids(
        ceremony, "image-targets-1", "image-targets-2"
    )
    assert root.roles["snapshot"].keyids == [ceremony.online_keys["image-snapshot"].keyid]
    assert root.roles["timestamp"].keyids == [ceremony.online_keys["image-timestamp"].keyid]

    one = next(iter(md.signatures))
    md.signatures = {one: md.signatures[one]}
    with pytest.raises(UnsignedMetadataError):
        root.verify_delegate("root", md.signed_bytes, md.signatures)


def test_image_targets_verify_with_the_roots_targets_role_and_delegate_models(
    ceremony: CeremonyResult,
) -> None:
    root = load_root(ceremony.image_root).signed
    md = Metadata[Targets].from_bytes(ceremony.image_targets.read_bytes())
    root.verify_delegate("targets", md.signed_bytes, md.signatures)
    assert set(md.signatures) == keyids(ceremony, "image-targets-1", "image-targets-2")
    targets = md.signed
    assert targets.version == 1
    assert targets.targets == {}
    assert targets.delegations is not None and targets.delegations.roles is not None
    models_keyid = ceremony.online_keys["image-models"].keyid
    assert set(targets.delegations.keys) == {models_keyid}
    role = targets.delegations.roles[tufrepo.MODELS_ROLE]
    assert role.keyids == [models_keyid]
    assert role.threshold == 1
    assert role.terminating is False
    assert role.paths == tufrepo.MODELS_ROLE_PATHS


def test_targets_signed_by_a_root_key_do_not_verify(
    ceremony: CeremonyResult, officer_passphrase: str
) -> None:
    root = load_root(ceremony.image_root).signed
    md = Metadata[Targets].from_bytes(ceremony.image_targets.read_bytes())
    tufrepo.sign_with(md, ceremony.record.signers(["image-root-1"], lambda _: officer_passphrase))
    with pytest.raises(UnsignedMetadataError):
        root.verify_delegate("targets", md.signed_bytes, md.signatures)


def test_director_root_has_its_own_keys_and_anchors_the_envelope_key(
    ceremony: CeremonyResult,
) -> None:
    md = load_root(ceremony.director_root)
    root = md.signed
    tufrepo.check_root_signed(md)
    director_root_ids = keyids(ceremony, "director-root-1", "director-root-2", "director-root-3")
    assert set(md.signatures) == director_root_ids
    assert set(root.roles["root"].keyids) == director_root_ids
    assert root.roles["root"].threshold == 2
    assert root.roles["targets"].keyids == [ceremony.online_keys["director-targets"].keyid]
    assert root.roles["snapshot"].keyids == [ceremony.online_keys["director-snapshot"].keyid]
    assert root.roles["timestamp"].keyids == [ceremony.online_keys["director-timestamp"].keyid]
    assert not director_root_ids & set(load_root(ceremony.image_root).signed.roles["root"].keyids)

    keys, threshold = tufrepo.envelope_keys(root)
    envelope = ceremony.online_keys["envelope"]
    assert threshold == 1
    assert keys == {envelope.keyid: envelope.public_key}


def test_expiries_come_from_the_injected_clock(
    ceremony: CeremonyResult, ceremony_now: dt.datetime
) -> None:
    year = ceremony_now + dt.timedelta(days=365)
    assert load_root(ceremony.image_root).signed.expires == year
    assert load_root(ceremony.director_root).signed.expires == year
    targets = Metadata[Targets].from_bytes(ceremony.image_targets.read_bytes()).signed
    assert targets.expires == ceremony_now + dt.timedelta(days=180)


def test_short_lived_roots_for_tests(tmp_path: Path) -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    options = CeremonyOptions(root_keys=1, root_threshold=1, targets_keys=1, root_expiry_days=2)
    result = run_minimal_ceremony(tmp_path / "c", "officers-pass", "hub-passphrase", options, clock)
    root = load_root(result.image_root).signed
    assert not root.is_expired(clock.now() + dt.timedelta(days=1))
    assert root.is_expired(clock.now() + dt.timedelta(days=3))


def test_ecdsa_p256_ceremony(tmp_path: Path) -> None:
    options = CeremonyOptions(algorithm="ecdsa-p256", root_keys=2, root_threshold=2, targets_keys=1)
    result = run_minimal_ceremony(tmp_path / "c", "officers-pass", "hub-passphrase", options)
    assert result.record.algorithm == "ecdsa-p256"
    for ref in [*result.offline_keys.values(), *result.online_keys.values()]:
        assert ref.public_key.scheme == "ecdsa-sha2-nistp256"
    for path in (result.image_root, result.director_root):
        tufrepo.check_root_signed(load_root(path))
    signer = result.record.signers(["image-root-1"], lambda _: "officers-pass")[0]
    assert isinstance(signer, CryptoSigner)


# --- the record -------------------------------------------------------------------------


def test_record_describes_the_files(ceremony: CeremonyResult, ceremony_now: dt.datetime) -> None:
    record = load_ceremony(ceremony.out_dir)
    data = json.loads((ceremony.out_dir / "ceremony.json").read_text())
    assert record.to_dict() == data
    assert set(data) == {
        "ceremony_id", "created", "tool_version", "algorithm",
        "offline_keys", "online_keys", "roots", "image_targets",
    }  # fmt: skip
    assert record.ceremony_id == ceremony.ceremony_id
    assert record.created == ceremony_now
    assert record.tool_version == __version__
    assert record.algorithm == "ed25519"
    assert dict(record.offline_keys) == dict(ceremony.offline_keys)
    assert dict(record.online_keys) == dict(ceremony.online_keys)
    assert record.roots["image"].threshold == 2
    assert record.roots["director"].version == 1
    assert data["roots"]["image"]["expires"] == "2027-03-01T12:00:00Z"
    # The recorded hashes are those of the files, and read_* hand out the checked bytes.
    assert record.read_root("image") == ceremony.image_root.read_bytes()
    assert record.read_root("director") == ceremony.director_root.read_bytes()
    assert record.read_image_targets() == ceremony.image_targets.read_bytes()


def test_record_refuses_an_altered_root(ceremony: CeremonyResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ceremony.out_dir, copy)
    root = copy / "image" / "1.root.json"
    root.write_bytes(root.read_bytes().replace(b'"version": 1', b'"version": 2'))
    record = load_ceremony(copy)
    with pytest.raises(IntegrityError):
        record.read_root("image")
    (copy / "director" / "1.root.json").unlink()
    with pytest.raises(NotFoundError):
        record.read_root("director")


def test_load_ceremony_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_ceremony(tmp_path)
    (tmp_path / "ceremony.json").write_text('{"ceremony_id": "x"}')
    with pytest.raises(UsageError, match="malformed"):
        load_ceremony(tmp_path)
    (tmp_path / "ceremony.json").write_text("not json")
    with pytest.raises(UsageError):
        load_ceremony(tmp_path)


# --- audit ------------------------------------------------------------------------------


def test_audit_log_records_every_step_and_verifies(
    ceremony: CeremonyResult, officer_passphrase: str, hub_passphrase: str
) -> None:
    config = load_config(ceremony.out_dir, "ceremony")
    assert config.database_url == f"sqlite:///{(ceremony.out_dir / 'ceremony-audit.db').resolve()}"
    engine = make_engine(config.database_url)
    try:
        report = verify_engine(engine)
        entries = AuditLog(engine, component="ceremony").entries()
    finally:
        engine.dispose()
    assert report.ok and report.entries == len(entries)
    actions = [(entry.action, entry.object) for entry in entries]
    assert actions[0] == ("ceremony.start", ceremony.ceremony_id)
    assert actions[-1] == ("ceremony.init", ceremony.ceremony_id)
    created = [obj for action, obj in actions if action == "ceremony.key.create"]
    assert created == OFFLINE_NAMES + list(ONLINE_KEY_NAMES)
    assert ("ceremony.root.sign", "image/1.root.json") in actions
    assert ("ceremony.root.sign", "director/1.root.json") in actions
    assert ("ceremony.targets.sign", "image/1.targets.json") in actions
    assert all(entry.outcome == "success" and entry.component == "ceremony" for entry in entries)
    key_entry = next(e for e in entries if e.object == "envelope")
    assert json.loads(key_entry.details)["keyid"] == ceremony.online_keys["envelope"].keyid
    raw = (ceremony.out_dir / "ceremony-audit.db").read_bytes()
    for secret in (officer_passphrase, hub_passphrase):
        assert secret.encode() not in raw
        assert all(secret not in entry.details for entry in entries)


# --- refusals and failures leave nothing behind -----------------------------------------


def test_refuses_a_directory_that_holds_a_ceremony_and_leaves_it_intact(
    ceremony: CeremonyResult,
) -> None:
    before = tree(ceremony.out_dir)
    with pytest.raises(ConflictError, match="already contains a key ceremony"):
        run_minimal_ceremony(ceremony.out_dir, "other-officers", "other-hub-pass")
    assert tree(ceremony.out_dir) == before
    assert list(ceremony.out_dir.parent.iterdir()) == [ceremony.out_dir]


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="not empty"):
        run_minimal_ceremony(tmp_path / "out", "officers-pass", "hub-passphrase")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_accepts_an_empty_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    options = CeremonyOptions(root_keys=1, root_threshold=1, targets_keys=1)
    result = run_minimal_ceremony(tmp_path / "out", "officers-pass", "hub-passphrase", options)
    assert load_ceremony(result.out_dir).ceremony_id == result.ceremony_id


def test_a_too_short_hub_passphrase_fails_after_the_offline_keys_and_leaves_no_directory(
    tmp_path: Path,
) -> None:
    with pytest.raises(SecretError, match="too short"):
        run_minimal_ceremony(tmp_path / "out", "officers-pass", "short")
    assert list(tmp_path.iterdir()) == []


def test_the_same_passphrase_for_officers_and_hub_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="same"):
        run_minimal_ceremony(tmp_path / "out", "one-passphrase", "one-passphrase")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_parent_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        run_minimal_ceremony(tmp_path / "no" / "out", "officers-pass", "hub-passphrase")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CeremonyOptions(root_threshold=4), "root threshold"),
        (CeremonyOptions(root_threshold=0), "root threshold"),
        (CeremonyOptions(targets_keys=2, targets_threshold=3), "targets threshold"),
        (CeremonyOptions(root_keys=0, root_threshold=0), "number of root keys"),
        (CeremonyOptions(algorithm="rsa"), "algorithm"),
        (CeremonyOptions(root_expiry_days=0), "expiry"),
    ],
)
def test_invalid_options_are_usage_errors(
    tmp_path: Path, options: CeremonyOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as info:
        run_minimal_ceremony(tmp_path / "out", "officers-pass", "hub-passphrase", options)
    assert info.value.hint
    assert list(tmp_path.iterdir()) == []


# --- later root versions ----------------------------------------------------------------


def test_sign_new_root_rotates_a_root_key(
    ceremony: CeremonyResult, officer_passphrase: str
) -> None:
    current = load_root(ceremony.image_root)
    new_key = CryptoSigner.generate_ed25519()
    new = next_root(current.signed)
    new.revoke_key(ceremony.record.key("image-root-3").keyid, "root")
    new.add_key(new_key.public_key, "root")
    old_signers = ceremony.record.signers(
        ["image-root-1", "image-root-2"], lambda _: officer_passphrase
    )
    md = sign_new_root(current, new, [*old_signers, new_key])
    assert md.signed.version == 2
    # What a client checks: a threshold of the old root's keys and of the new root's keys.
    assert md.signed.get_root_verification_result(
        current.signed, md.signed_bytes, md.signatures
    ).verified
    without_new_key = dict(md.signatures)
    del without_new_key[new_key.public_key.keyid]
    result = md.signed.get_root_verification_result(
        current.signed, md.signed_bytes, without_new_key
    )
    assert result.first.verified and result.second.verified  # 2 old keys still make 2-of-3 in both

    under = sign_new_root(current, next_root(current.signed), old_signers[:1])
    with pytest.raises(UnsignedMetadataError):
        current.signed.verify_delegate("root", under.signed_bytes, under.signatures)

    with pytest.raises(UsageError, match="version 2"):
        sign_new_root(current, current.signed, old_signers)


def test_an_unwritable_destination_is_a_media_error() -> None:
    # /proc exists but nothing can be created in it: a real write failure, no mocks.
    with pytest.raises(MediaError, match="cannot write"):
        run_minimal_ceremony(Path("/proc/airlock-ceremony"), "officers-pass", "hub-passphrase")
