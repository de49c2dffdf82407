"""`airlock hub model add / list`: content-addressed storage and the Image delegation chain."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from helpers.hubenv import tree_digest
from helpers.onnx_models import WEIGHTS_FILE, make_onnx_model
from sqlmodel import Session

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    MissingFileError,
    UsageError,
)
from airlock.hub.catalog import list_models
from airlock.hub.context import HubContext, load_image_repo
from airlock.hub.intake import add_model, release_model
from airlock.hub.repos import ImageRepo, verify_delegations
from airlock.hub.sites import family_tenants


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_file_stores_the_blob_and_signs_it_through_the_delegation_chain(
    hub: HubContext, onnx_file: Path
) -> None:
    model = add_model(hub, "classifier", "1.0.0", onnx_file)
    [file] = model.files
    assert (file.filename, file.length, file.primary) == (
        "classifier.onnx",
        onnx_file.stat().st_size,
        True,
    )
    assert file.sha256 == sha256(onnx_file)
    assert hub.blobs.path(file.sha256).read_bytes() == onnx_file.read_bytes()

    repo = load_image_repo(hub)
    verify_delegations(repo)  # targets → models → tenant-default
    targets, models = repo.targets.signed, repo.models
    targets.verify_delegate(tufrepo.MODELS_ROLE, models.signed_bytes, models.signatures)
    family = repo.tenants["default"]  # no --tenant: the family belongs to `default`
    role = tufrepo.tenant_role("default")
    models.signed.verify_delegate(role, family.signed_bytes, family.signatures)
    delegated = models.signed.get_delegated_role(role)
    assert delegated.terminating and delegated.paths == tufrepo.family_paths("classifier")
    assert models.signed.version == 2

    target = family.signed.targets["classifier/1.0.0/classifier.onnx"]
    assert target.length == file.length and target.hashes == {"sha256": file.sha256}
    assert target.custom == tufrepo.image_custom(model, "classifier.onnx", True)

    meta = repo.snapshot.signed.meta if repo.snapshot else {}
    assert meta[f"{role}.json"].version == family.signed.version
    assert meta["models.json"].version == models.signed.version
    assert meta[f"{role}.json"].hashes == {
        "sha256": hashlib.sha256(tufrepo.to_bytes(family)).hexdigest()
    }

    key_file = hub.home.root / "tenant-keys" / "default.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    assert [m.ref for m in list_models(hub)] == ["classifier@1.0.0"]


def test_add_directory_with_external_data(hub: HubContext, onnx_dir: Path) -> None:
    model = add_model(hub, "detector", "2", onnx_dir)
    files = {f.filename: f for f in model.files}
    assert set(files) == {"model.onnx", WEIGHTS_FILE}
    assert files["model.onnx"].primary and not files[WEIGHTS_FILE].primary
    for name, f in files.items():
        assert f.sha256 == sha256(onnx_dir / name)
        assert hub.blobs.path(f.sha256).is_file()
    family = load_image_repo(hub).tenants["default"].signed.targets
    assert set(family) == {"detector/2/model.onnx", f"detector/2/{WEIGHTS_FILE}"}
    assert family[f"detector/2/{WEIGHTS_FILE}"].custom["airlock"]["primary"] is False


def test_new_versions_and_new_families_join_the_default_tenants_role(
    hub: HubContext, onnx_file: Path, tmp_path: Path
) -> None:
    add_model(hub, "classifier", "1", onnx_file)
    add_model(hub, "classifier", "2", make_onnx_model(tmp_path / "v2" / "c.onnx", seed=2))
    add_model(hub, "other", "1", onnx_file)
    repo = load_image_repo(hub)
    verify_delegations(repo)
    delegations = repo.models.signed.delegations
    assert delegations is not None and delegations.roles is not None
    assert list(delegations.roles) == ["tenant-default"]
    assert delegations.roles["tenant-default"].paths == ["classifier/*/*", "other/*/*"]
    assert repo.tenants["default"].signed.version == 3
    assert len(repo.tenants["default"].signed.targets) == 3
    assert repo.models.signed.version == 3  # one bump per new family
    assert family_tenants(hub) == {"classifier": "default", "other": "default"}


def test_versions_are_immutable(hub: HubContext, onnx_file: Path, tmp_path: Path) -> None:
    add_model(hub, "classifier", "1.0.0", onnx_file)
    before = tree_digest(hub.home.root)
    again = release_model(hub, "classifier", "1.0.0", onnx_file)
    assert again.created is False
    assert tree_digest(hub.home.root) == before

    different = make_onnx_model(tmp_path / "changed" / "classifier.onnx", seed=9)
    with pytest.raises(ConflictError, match="different files"):
        add_model(hub, "classifier", "1.0.0", different)
    assert tree_digest(hub.home.root) == before
    outcomes = [(e.action, e.outcome) for e in AuditLog(hub.engine, "hub").entries()[1:]]
    assert outcomes == [
        ("hub.model.add", "success"),
        ("hub.model.add", "unchanged"),
        ("hub.model.add", "refused"),
    ]


def _refused(hub: HubContext, path: Path, match: str, error: type[Exception] = UsageError) -> None:
    before = tree_digest(hub.home.root)
    with pytest.raises(error, match=match):
        add_model(hub, "classifier", "1", path)
    assert tree_digest(hub.home.root) == before
    assert list_models(hub) == []
    assert list(hub.home.tmp_dir.iterdir()) == []
    assert not (hub.home.root / "tenant-keys" / "default.pem").exists()


def test_nested_directory_is_refused(hub: HubContext, onnx_dir: Path) -> None:
    (onnx_dir / "nested").mkdir()
    _refused(hub, onnx_dir, "directory inside")


def test_symlink_is_refused(hub: HubContext, onnx_dir: Path) -> None:
    os.symlink(onnx_dir / WEIGHTS_FILE, onnx_dir / "link.bin")
    _refused(hub, onnx_dir, "symbolic link")


def test_two_graphs_are_refused(hub: HubContext, onnx_dir: Path, onnx_file: Path) -> None:
    (onnx_dir / "second.onnx").write_bytes(onnx_file.read_bytes())
    _refused(hub, onnx_dir, "2 .onnx files")


def test_invalid_onnx_is_refused(hub: HubContext, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    _refused(hub, bad, "not a valid ONNX model")


def test_missing_external_data_is_refused(hub: HubContext, onnx_dir: Path) -> None:
    (onnx_dir / WEIGHTS_FILE).unlink()
    _refused(hub, onnx_dir, "not a valid ONNX model")


def test_missing_path_and_bad_names_are_refused(
    hub: HubContext, tmp_path: Path, onnx_file: Path
) -> None:
    _refused(hub, tmp_path / "nope.onnx", "does not exist", MissingFileError)
    not_onnx = tmp_path / "model.bin"
    not_onnx.write_bytes(onnx_file.read_bytes())
    _refused(hub, not_onnx, "not an .onnx file")
    with pytest.raises(UsageError, match="invalid model version"):
        add_model(hub, "classifier", "../1", onnx_file)


def test_a_failed_commit_leaves_no_blob_behind(
    hub: HubContext, onnx_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database commit fails after the files were written: all of it is undone."""
    before = tree_digest(hub.home.root)
    real_commit = Session.commit
    calls: list[int] = []

    def commit_failing_once(self: Session) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        real_commit(self)

    monkeypatch.setattr(Session, "commit", commit_failing_once)
    with pytest.raises(AirlockError, match="disk went away"):
        add_model(hub, "classifier", "1", onnx_file)
    monkeypatch.undo()
    assert len(calls) == 2  # the state change, then the failure entry
    assert tree_digest(hub.home.root) == before
    assert list_models(hub) == []
    last = AuditLog(hub.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("hub.model.add", "failure")
    assert json.loads(last.details)["error"] == "OSError"


def test_image_repo_reloads_what_was_written(hub: HubContext, onnx_file: Path) -> None:
    add_model(hub, "classifier", "1", onnx_file)
    repo = ImageRepo.load(hub.home.image_dir)
    assert set(repo.tenants) == {"default"}
    assert repo.timestamp is not None and repo.timestamp.signed.version == 2
