"""`airlock hub init`: a hub home from a verified ceremony, or nothing at all."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from helpers.hubenv import HUB_PASSPHRASE, HUB_TIME, hub_secrets, tree_digest
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import (
    ConflictError,
    NotFoundError,
    SecretError,
    SignatureError,
    TrustError,
    UsageError,
)
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub.context import HubContext, load_image_repo, open_hub
from airlock.hub.repos import ONLINE_KEY_NAMES
from airlock.hub.trust import init_hub


def copy_ceremony(ceremony: CeremonyResult, tmp_path: Path) -> Path:
    target = tmp_path / "ceremony-copy"
    shutil.copytree(ceremony.out_dir, target)
    return target


def test_init_lays_out_the_home_and_signs_the_models_role(
    hub: HubContext, ceremony: CeremonyResult
) -> None:
    root = hub.home.root
    assert (root / "airlock.toml").is_file() and (root / "hub.db").is_file()
    assert sorted(p.name for p in (root / "online-keys").iterdir()) == sorted(
        f"{name}.pem" for name in ONLINE_KEY_NAMES
    )
    for key_file in (root / "online-keys").iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (root / "offline-keys").exists()
    assert not any("offline" in str(p) for p in root.rglob("*"))
    image = root / "repository" / "image"
    assert (image / "1.root.json").read_bytes() == ceremony.image_root.read_bytes()
    assert (root / "repository" / "director" / "root" / "1.root.json").read_bytes() == (
        ceremony.director_root.read_bytes()
    )

    repo = load_image_repo(hub)
    models = repo.models
    assert models.signed.version == 1
    assert models.signed.targets == {}
    repo.targets.signed.verify_delegate(tufrepo.MODELS_ROLE, models.signed_bytes, models.signatures)
    expected = tufrepo.expiry_from(HUB_TIME, tufrepo.ONLINE_ROLE_EXPIRY_DAYS)
    assert tufrepo.signed_expires(models.signed) == expected

    snapshot = Metadata[Snapshot].from_bytes((image / "snapshot.json").read_bytes())
    timestamp = Metadata[Timestamp].from_bytes((image / "timestamp.json").read_bytes())
    repo.root.signed.verify_delegate("snapshot", snapshot.signed_bytes, snapshot.signatures)
    repo.root.signed.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)
    assert snapshot.signed.meta["models.json"].version == 1
    assert snapshot.signed.meta["targets.json"].version == 1
    assert timestamp.signed.snapshot_meta.version == snapshot.signed.version

    entries = AuditLog(hub.engine, "hub").entries()
    assert [(e.action, e.outcome) for e in entries] == [("hub.init", "success")]
    assert json.loads(entries[0].details)["ceremony_id"] == ceremony.ceremony_id
    assert HUB_PASSPHRASE not in entries[0].details
    assert verify_engine(hub.engine).ok


def test_init_refuses_an_existing_home_and_audits_it(
    hub: HubContext, ceremony: CeremonyResult
) -> None:
    before = tree_digest(hub.home.root)
    with pytest.raises(ConflictError, match="already exists"):
        init_hub(hub.home.root, ceremony.out_dir, hub_secrets, clock=FixedClock(HUB_TIME))
    assert tree_digest(hub.home.root) == before
    entries = AuditLog(hub.engine, "hub").entries()
    assert [(e.action, e.outcome) for e in entries] == [
        ("hub.init", "success"),
        ("hub.init", "refused"),
    ]
    assert verify_engine(hub.engine).ok


def test_init_refuses_a_non_empty_directory(tmp_path: Path, ceremony: CeremonyResult) -> None:
    home = tmp_path / "not-a-hub"
    home.mkdir()
    (home / "notes.txt").write_text("keep me")
    with pytest.raises(ConflictError):
        init_hub(home, ceremony.out_dir, hub_secrets)
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


def test_init_accepts_an_empty_directory(tmp_path: Path, ceremony: CeremonyResult) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    init_hub(home, ceremony.out_dir, hub_secrets).close()
    assert (home / "airlock.toml").is_file()


def _assert_nothing_created(tmp_path: Path) -> None:
    assert not (tmp_path / "home").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".home")]


def test_init_refuses_a_tampered_root(tmp_path: Path, ceremony: CeremonyResult) -> None:
    copy = copy_ceremony(ceremony, tmp_path)
    root_file = copy / "image" / "1.root.json"
    doc = json.loads(root_file.read_bytes())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"  # extend the root's life
    root_file.write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="root version 1"):
        init_hub(tmp_path / "home", copy, hub_secrets)
    _assert_nothing_created(tmp_path)


def test_init_refuses_image_targets_below_threshold(
    tmp_path: Path, ceremony: CeremonyResult
) -> None:
    copy = copy_ceremony(ceremony, tmp_path)
    targets_file = copy / "image" / "1.targets.json"
    md = Metadata[Targets].from_bytes(targets_file.read_bytes())
    md.signatures.clear()
    targets_file.write_bytes(tufrepo.to_bytes(md))
    with pytest.raises(SignatureError, match="Image targets"):
        init_hub(tmp_path / "home", copy, hub_secrets)
    _assert_nothing_created(tmp_path)


def test_init_refuses_online_keys_that_the_roots_do_not_name(
    tmp_path: Path, ceremony: CeremonyResult
) -> None:
    copy = copy_ceremony(ceremony, tmp_path)
    record_file = copy / "ceremony.json"
    record = json.loads(record_file.read_bytes())
    keys = record["online_keys"]
    keys["image-snapshot"], keys["image-timestamp"] = (
        keys["image-timestamp"],
        keys["image-snapshot"],
    )
    record_file.write_text(json.dumps(record))
    with pytest.raises(TrustError, match="online key"):
        init_hub(tmp_path / "home", copy, hub_secrets)
    _assert_nothing_created(tmp_path)


def test_init_refuses_a_swapped_key_file(tmp_path: Path, ceremony: CeremonyResult) -> None:
    copy = copy_ceremony(ceremony, tmp_path)
    keys = copy / "online-keys"
    shutil.copy(keys / "image-timestamp.pem", keys / "image-snapshot.pem")
    with pytest.raises(UsageError, match="does not match"):
        init_hub(tmp_path / "home", copy, hub_secrets)
    _assert_nothing_created(tmp_path)


def test_init_refuses_a_wrong_passphrase(tmp_path: Path, ceremony: CeremonyResult) -> None:
    with pytest.raises(SecretError):
        init_hub(tmp_path / "home", ceremony.out_dir, lambda _name: "not the hub passphrase")
    _assert_nothing_created(tmp_path)


def test_init_refuses_a_directory_that_is_no_ceremony(tmp_path: Path) -> None:
    (tmp_path / "empty-ceremony").mkdir()
    with pytest.raises(NotFoundError, match=r"ceremony\.json"):
        init_hub(tmp_path / "home", tmp_path / "empty-ceremony", hub_secrets)
    _assert_nothing_created(tmp_path)


def test_open_needs_an_initialised_home(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not an initialised hub home"):
        open_hub(tmp_path / "nowhere", hub_secrets)
