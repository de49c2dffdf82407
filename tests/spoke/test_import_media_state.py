"""Finding a format-2 bundle on several media, and the resumable state's private storage."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from helpers.spokeenv import World

from airlock.bundles.errors import MediaError, MissingFileError, StorageError, UsageError
from airlock.spoke.importing import list_pending
from airlock.spoke.importing._media import scan_media
from airlock.spoke.importing._pending import create_pending, tidy
from airlock.spoke.site import SpokeHome

ENVELOPE = b'{"signed": {}, "signatures": []}'
VOLUME = "0123456789abcdef-data-001-of-002.age"


def medium(root: Path, name: str, files: dict[str, bytes]) -> Path:
    path = root / name
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def test_envelope_at_the_top_or_under_sites_and_volumes_by_name(tmp_path: Path) -> None:
    one = medium(tmp_path, "m1", {"sites/plant-7/envelope.json": ENVELOPE,
                                  "sites/plant-7/site.age": b"x", VOLUME: b"1"})  # fmt: skip
    parity = "0123456789abcdef-parity-001-of-001.zfec"
    two = medium(tmp_path, "m2", {parity: b"p", "notes.txt": b""})
    found = scan_media([two, one], "plant-7")
    assert found.envelope == ENVELOPE and found.site_part == one / "sites/plant-7/site.age"
    assert sorted(found.volumes) == [VOLUME, parity]


def test_other_sites_envelopes_are_not_this_sites(tmp_path: Path) -> None:
    one = medium(tmp_path, "m1", {"sites/plant-9/envelope.json": ENVELOPE, VOLUME: b"1"})
    assert scan_media([one], "plant-7").envelope is None


def test_refusals(tmp_path: Path) -> None:
    one = medium(tmp_path, "m1", {"envelope.json": ENVELOPE, "site.age": b"a", VOLUME: b"1"})
    two = medium(tmp_path, "m2", {"envelope.json": ENVELOPE + b" ", "site.age": b"a"})
    with pytest.raises(MediaError, match="differs from"):
        scan_media([one, two], "plant-7")
    (two / "envelope.json").write_bytes(ENVELOPE)
    (two / "site.age").write_bytes(b"b")
    with pytest.raises(MediaError, match="differs from"):
        scan_media([one, two], "plant-7")
    (two / "site.age").write_bytes(b"a")
    (two / VOLUME).write_bytes(b"1")
    with pytest.raises(MediaError, match=f"volume {VOLUME} is in two directories"):
        scan_media([one, two], "plant-7")
    (two / VOLUME).unlink()
    (two / VOLUME).symlink_to(one / VOLUME)
    with pytest.raises(MediaError, match="not a regular file"):
        scan_media([two], "plant-7")
    with pytest.raises(UsageError, match="given twice"):
        scan_media([one, tmp_path / "m1" / "."], "plant-7")
    with pytest.raises(MissingFileError):
        scan_media([tmp_path / "nowhere"], "plant-7")


@pytest.fixture
def home(world: World, tmp_path: Path) -> SpokeHome:
    spoke = world.new_spoke(tmp_path / "spoke")
    yield spoke
    spoke.close()


def test_the_state_is_private_and_never_reached_through_a_link(
    home: SpokeHome, tmp_path: Path
) -> None:
    from airlock.bundles.clock import parse_utc
    from airlock.bundles.models import Envelope

    envelope = Envelope.__new__(Envelope)
    object.__setattr__(envelope, "bundle_id", "c53201e4-ef7b-45f0-bdfb-afe70cfeaaf3")
    object.__setattr__(envelope, "sequence", 3)
    object.__setattr__(envelope, "created", parse_utc("2026-12-01T00:00:00Z"))
    object.__setattr__(envelope, "expires", parse_utc("2026-12-31T00:00:00Z"))
    now = parse_utc("2026-12-02T00:00:00Z")
    pending = create_pending(home, envelope, b"{}", "ab" * 32, now)
    for path in (
        home.path / "staging",
        pending.path.parent,
        pending.path,
        *pending.path.rglob("*"),
    ):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    [listed] = list_pending(home)[0]
    assert (listed.bundle_id, listed.sequence) == (envelope.bundle_id, 3)

    (pending.path.parent / ".new-half-made").mkdir()
    assert tidy(home, 2, now) == [] and not (pending.path.parent / ".new-half-made").exists()
    dropped = tidy(home, 3, now)  # the site imported sequence 3 meanwhile
    assert dropped == [
        {"bundle_id": envelope.bundle_id, "sequence": 3,
         "reason": "superseded: the site already imported sequence 3"}
    ]  # fmt: skip

    imports = home.path / "staging" / "imports"
    os.rmdir(imports)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    imports.symlink_to(elsewhere)
    with pytest.raises(StorageError, match="not a directory"):
        create_pending(home, envelope, b"{}", "ab" * 32, now + dt.timedelta(seconds=1))
    assert list(elsewhere.iterdir()) == []


def test_the_site_part_may_be_on_another_medium_than_the_envelope(tmp_path: Path) -> None:
    one = medium(tmp_path, "m1", {"envelope.json": ENVELOPE, VOLUME: b"1"})
    two = medium(tmp_path, "m2", {"sites/plant-7/site.age": b"a"})
    found = scan_media([one, two], "plant-7")
    assert found.envelope == ENVELOPE and found.site_parts == [two / "sites/plant-7/site.age"]
