"""A full disk or a read-only home during ``airlock spoke import``: exit 7, a hint, no change.

The spoke home lives on a real, small tmpfs: the kernel refuses the writes
(ENOSPC, EROFS) as a site's disk would. Nothing of ours is faked; the only
hook is the moment the disk fills up (the outside world, at the site key's
load, after the payload was unpacked).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.onnx_models import make_onnx_model
from helpers.smalldisk import fill, remount, small_tmpfs
from helpers.spokeenv import (
    SITE_ID,
    Invoke,
    World,
    assert_refused_unchanged,
    cli_refuse_import,
    run_airlock,
    take_snapshot,
)

from airlock.bundles.errors import StorageError
from airlock.hub.context import HubContext
from airlock.hub.export import assign, export
from airlock.hub.intake import add_model
from airlock.spoke.site import SpokeHome

MiB = 1 << 20


@pytest.fixture
def big_bundle(hub: HubContext, media: Path, tmp_path: Path) -> Path:
    """A bundle for plant-7 carrying an 8 MiB model besides the template's."""
    model = make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, width=2 * MiB)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")
    export(hub, SITE_ID, media / "bundle")
    return media / "bundle"


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


def test_a_read_only_home_exits_7_naming_the_cause(
    world: World, disk: Path, big_bundle: Path
) -> None:
    home = world.new_spoke(disk / "spoke")
    before = take_snapshot(home)
    home.engine.dispose()
    remount(disk, read_only=True)
    try:
        proc = run_airlock("spoke", "import", "--home", str(home.path), str(big_bundle))
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
