"""A full disk or a read-only home during ``airlock spoke import``: a hint, nothing staged.

The spoke home lives on a real, small tmpfs: the kernel refuses the writes
(ENOSPC, EROFS) as a site's disk would. Nothing of ours is faked; the only
hook is the moment the disk fills up (the outside world, at the site key's
load, after the payload was unpacked).

Format 1 removes what it unpacked, so its refusal is audited and exits 7.
Format 2 keeps what it verified for the retry (docs/site-admin.md): on a disk
its own state filled, the refusal cannot be audited either — exit 6 naming
both causes and the same hint — and once space is freed the import goes on
from its state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bundlecraft import FORMAT_1
from helpers.onnx_models import make_onnx_model
from helpers.smalldisk import fill, grow, remount, small_tmpfs
from helpers.spokeenv import (
    SITE_ID,
    Invoke,
    World,
    accept_import,
    assert_refused_unchanged,
    cli_refuse_import,
    dump_rows,
    pending_imports,
    run_airlock,
    take_snapshot,
)

from airlock.bundles.audit import AuditLog
from airlock.bundles.errors import StorageError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, assign, export
from airlock.hub.intake import add_model
from airlock.spoke.site import SpokeHome

MiB = 1 << 20
AUDIT_FAILED = "the audit event 'spoke.import' could not be written: database or disk is full"
FREE_SPACE = "what to do: free space on the filesystem holding"


def _big_bundle(hub: HubContext, out: Path, models: Path, media: MediaOptions) -> Path:
    """A bundle for plant-7 carrying an 8 MiB model besides the template's."""
    model = make_onnx_model(models / "big" / "model.onnx", external_data=True, width=2 * MiB)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")
    export(hub, SITE_ID, out, media=media)
    return out


@pytest.fixture
def big_bundle(hub: HubContext, media: Path, tmp_path: Path) -> Path:
    """The 8 MiB bundle in format 1 (one payload.age, unpacked under HOME/tmp)."""
    return _big_bundle(hub, media / "bundle", tmp_path, FORMAT_1)


@pytest.fixture
def big_v2_bundle(hub: HubContext, media: Path, tmp_path: Path) -> Path:
    """The 8 MiB bundle in format 2 (site.age and one data volume)."""
    return _big_bundle(hub, media / "bundle", tmp_path, MediaOptions())


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs: the spoke home fits, the 8 MiB model does not."""
    with small_tmpfs(tmp_path / "disk", 6 * MiB) as mounted:
        yield mounted


def test_a_full_disk_while_unpacking_exits_7_and_changes_nothing(
    world: World, disk: Path, big_bundle: Path
) -> None:
    home = world.new_spoke(disk / "spoke")
    proc = cli_refuse_import(home, big_bundle, StorageError, "No space left on device")
    assert proc.returncode == 7
    assert f"cannot write the unpacked payload under {home.tmp_dir}" in proc.stderr
    assert "what to do: free space on the filesystem holding" in proc.stderr
    home.engine.dispose()


def test_a_full_disk_at_the_database_commit_exits_7_and_stages_nothing(
    world: World, tmp_path: Path, big_bundle: Path, airlock: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_tmpfs(tmp_path / "roomy", 24 * MiB) as roomy:
        home = world.new_spoke(roomy / "spoke")
        load_key = SpokeHome.signing_key

        def load_key_while_the_disk_fills_up(self: SpokeHome) -> object:
            fill(roomy)  # another program takes the last byte, after the unpack
            return load_key(self)

        monkeypatch.setattr(SpokeHome, "signing_key", load_key_while_the_disk_fills_up)
        before = take_snapshot(home)
        result = airlock("spoke", "import", "--home", str(home.path), str(big_bundle))
        assert result.exit_code == 7, result.output
        assert "database or disk is full" in result.stderr
        assert "what to do: free space on the filesystem holding" in result.stderr
        assert "Traceback" not in result.stderr
        assert_refused_unchanged(home, before, StorageError, exit_code=result.exit_code)
        assert not any(home.blob_dir.iterdir()) if home.blob_dir.exists() else True
        home.engine.dispose()


@pytest.mark.parametrize("bundle_format", [1, 2], ids=["format-1", "format-2"], indirect=True)
def test_a_read_only_home_exits_7_naming_the_cause(
    world: World, hub: HubContext, media: Path, disk: Path, bundle_format: MediaOptions
) -> None:
    bundle = _big_bundle(hub, media / "bundle", disk.parent / "models", bundle_format)
    home = world.new_spoke(disk / "spoke")
    before = take_snapshot(home)
    home.engine.dispose()
    remount(disk, read_only=True)
    try:
        proc = run_airlock("spoke", "import", "--home", str(home.path), str(bundle))
    finally:
        remount(disk, read_only=False)
    assert proc.returncode == 7, proc.stderr
    first, hint = proc.stderr.splitlines()[:2]
    assert first == (
        f"error: the database {home.path / 'spoke.db'} cannot be written: "
        "unable to open database file"
    )
    assert (
        hint
        == f"  what to do: the home {home.path} is read-only: remount it read-write, then retry"
    )
    assert "Traceback" not in proc.stderr
    assert take_snapshot(home) == before


# --- format 2: the state is kept, and the import goes on once there is room ----------------------


def _bundle_id(bundle: Path) -> str:
    return str(json.loads((bundle / "envelope.json").read_bytes())["signed"]["bundle_id"])


def test_a_full_disk_while_verifying_volumes_keeps_the_state_and_resumes(
    world: World, disk: Path, big_v2_bundle: Path, airlock: Invoke
) -> None:
    """The verified chunks fill the disk: the refusal names the state's directory and why,
    stages nothing, keeps the state; with room, importing again completes the import."""
    home = world.new_spoke(disk / "spoke")
    rows, entries = dump_rows(home), AuditLog(home.engine, "spoke").count()
    result = airlock("spoke", "import", "--home", str(home.path), str(big_v2_bundle))
    assert result.exit_code == 6, result.output
    assert result.stderr.startswith(f"error: {AUDIT_FAILED}; the import had failed: ")
    assert f"cannot write the verified chunks under {home.path / 'staging/imports'}" in (
        result.stderr
    )
    assert "No space left on device" in result.stderr and FREE_SPACE in result.stderr
    assert "Traceback" not in result.stderr
    assert dump_rows(home) == rows
    assert not any(home.blob_dir.iterdir()) if home.blob_dir.exists() else True
    assert AuditLog(home.engine, "spoke").count() == entries  # nothing could be written
    assert pending_imports(home) == {_bundle_id(big_v2_bundle)}

    grow(disk, 24 * MiB)  # the operator frees space
    result = accept_import(home, big_v2_bundle)
    assert "big@1" in result.staged and pending_imports(home) == set()
    home.engine.dispose()


def test_a_full_disk_at_the_commit_keeps_the_verified_state_for_the_retry(
    world: World,
    tmp_path: Path,
    big_v2_bundle: Path,
    airlock: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another program fills the disk after every volume was verified: nothing is staged,
    and once it frees the space the import completes without reading a volume again."""
    with small_tmpfs(tmp_path / "roomy", 40 * MiB) as roomy:
        home = world.new_spoke(roomy / "spoke")
        load_key = SpokeHome.signing_key
        filler: list[Path] = []

        def load_key_while_the_disk_fills_up(self: SpokeHome) -> object:
            if not filler:
                filler.append(fill(roomy))
            return load_key(self)

        monkeypatch.setattr(SpokeHome, "signing_key", load_key_while_the_disk_fills_up)
        rows = dump_rows(home)
        result = airlock("spoke", "import", "--home", str(home.path), str(big_v2_bundle))
        assert result.exit_code == 6, result.output
        assert result.stderr.startswith(f"error: {AUDIT_FAILED}; the import had failed: ")
        assert "spoke.db cannot be written: database or disk is full" in result.stderr
        assert FREE_SPACE in result.stderr and "Traceback" not in result.stderr
        assert dump_rows(home) == rows
        assert not any(home.blob_dir.iterdir()) if home.blob_dir.exists() else True
        assert pending_imports(home) == {_bundle_id(big_v2_bundle)}

        filler[0].unlink()  # the other program frees the space
        imported = accept_import(home, big_v2_bundle)
        assert imported.volumes is not None
        assert (imported.volumes["read"], imported.volumes["rebuilt"]) == ([], [])
        assert len(imported.volumes["resumed"]) == 1
        home.engine.dispose()
