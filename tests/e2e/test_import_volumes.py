"""Format-2 bundles at the spoke: several media in any order, resume, parity, supersede, expire.

Bundles are the hub's real plans written as volumes (:mod:`helpers.v2craft`: real
keys, real age, real TUF, real chunk-index bindings) and imported by the real
importer; only time (``FixedClock``) and the media (files) are the test's.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from helpers.spokeenv import SITE_ID, spoke_clock
from helpers.v2craft import write_v2_bundle
from helpers.v2env import assert_v2_refused, big_bundle, snapshot, state_of

from airlock.bundles.audit import AuditLog, verify_receipt
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import NotEnoughVolumesError
from airlock.hub.context import HubContext
from airlock.hub.export import assign, plan_export
from airlock.spoke.importing import (
    ABANDON_ACTION,
    EXPIRED_ACTION,
    PARTIAL_ACTION,
    abandon_import,
    import_media,
    import_status,
)
from airlock.spoke.site import SpokeHome
from airlock.spoke.status import read_status


class Reads:
    """Counts the bytes the assembler reads from volume files."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, nbytes: int) -> None:
        self.bytes += nbytes


def test_volumes_from_several_media_in_any_order(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", multi_site_layout=True)
    data = bundle.data_volumes()
    assert len(data) >= 3
    dirs = bundle.scatter(tmp_path / "couriers", [data[-1:], data[:1], data[1:-1]])
    assert (dirs[0] / "envelope.json").is_file() and (dirs[0] / "site.age").is_file()
    result = import_media(spoke, list(reversed(dirs)), spoke_clock())
    assert result.staged == ["big@1", "classifier@1", "detector@1"]
    assert sorted(result.volumes["read"]) == sorted(v.name for v in data)
    assert result.volumes["rebuilt"] == result.volumes["resumed"] == []
    assert state_of(spoke) == [], "a completed import keeps no state"
    for sha, length in ((s, t) for s, t in _assigned(bundle)):
        assert (spoke.blob_dir / sha).stat().st_size == length
    receipt = verify_receipt(canonical_bytes(result.receipt), spoke.signing_key().public_key)
    assert receipt.format_version == 2 and receipt.volumes["read"] == tuple(
        sorted(v.name for v in data)
    )
    big = [f for f in receipt.files if f.length == 6_000_000]
    assert len(big) == 1 and big[0].chunks == 6 and big[0].index_sha256
    last = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert (last.action, last.outcome) == ("spoke.import", "success")
    assert json.loads(last.details)["receipt"] == result.receipt


def _assigned(bundle) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(b.sha256, b.length) for b in bundle.plan.blobs]


def test_a_missing_volume_is_named_and_the_second_run_reads_only_it(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    data = bundle.data_volumes()
    missing = data[1]
    first, second = bundle.scatter(
        tmp_path / "couriers", [[v for v in data if v != missing], [missing]]
    )
    before = snapshot(spoke)
    with pytest.raises(NotEnoughVolumesError) as caught:
        import_media(spoke, [first], spoke_clock())
    assert caught.value.exit_code == 9
    assert missing.label in caught.value.message
    assert f"need this volume: volume {missing.number} ({missing.name})" in caught.value.message
    details = assert_v2_refused(
        spoke, before, caught.value, NotEnoughVolumesError, action=PARTIAL_ACTION, state="kept"
    )
    states = {v["name"]: v["state"] for v in details["volumes"]}
    assert states[missing.name] == "missing"
    assert all(states[v.name] == "verified" for v in data if v != missing)
    [status] = import_status(spoke, [second])
    assert status.bundle_id == bundle.envelope.bundle_id
    assert {v["name"]: v["state"] for v in status.volumes}[missing.name] == "pending"

    reads = Reads()
    result = import_media(spoke, [second], spoke_clock(), on_read=reads)  # no envelope here
    assert result.volumes["read"] == [missing.name]
    assert sorted(result.volumes["resumed"]) == sorted(v.name for v in data if v != missing)
    assert 0 < reads.bytes <= missing.size, "the second run read more than the missing volume"
    assert read_status(spoke).last_bundle_id == bundle.envelope.bundle_id
    assert state_of(spoke) == []


def test_one_lost_volume_is_rebuilt_from_parity(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", parity=1)
    lost = bundle.data_volumes()[0]
    bundle.path(lost).unlink()
    result = import_media(spoke, [bundle.root], spoke_clock())
    assert result.volumes["rebuilt"] == [lost.name]
    assert result.receipt is not None
    assert result.receipt["signed"]["volumes"]["rebuilt"] == [lost.name]
    assert set(result.staged) == {"big@1", "classifier@1", "detector@1"}


def test_the_state_is_private_and_survives_the_v1_scratch_clean_up(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    bundle.path(bundle.data_volumes()[-1]).unlink()
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [bundle.root], spoke_clock())
    [state] = (spoke.path / "staging" / "imports").iterdir()
    for path in [spoke.path / "staging", state.parent, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert not stat.S_ISLNK(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is readable by others ({oct(mode)})"
    (spoke.tmp_dir / "import-1-crashed").mkdir(mode=0o700)  # what a crashed v1 import leaves
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [bundle.root], spoke_clock())
    assert not (spoke.tmp_dir / "import-1-crashed").exists()
    assert state_of(spoke) == [bundle.envelope.bundle_id], "the v1 clean-up wiped the state"


def test_abandon_drops_the_state_and_audits_it(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    bundle.path(bundle.data_volumes()[0]).unlink()
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [bundle.root], spoke_clock())
    dropped = abandon_import(spoke, None, spoke_clock())
    assert dropped["bundle_id"] == bundle.envelope.bundle_id
    assert state_of(spoke) == [] and list((spoke.path / "staging" / "imports").iterdir()) == []
    last = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert (last.action, last.object) == (ABANDON_ACTION, bundle.envelope.bundle_id)


def test_an_expired_bundle_s_state_is_dropped_when_the_command_runs(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    bundle.path(bundle.data_volumes()[0]).unlink()
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [bundle.root], spoke_clock())
    later = FixedClock(bundle.envelope.expires + dt.timedelta(seconds=1))
    assert import_status(spoke, [], later) == []
    assert state_of(spoke) == []
    last = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert (last.action, last.object) == (EXPIRED_ACTION, bundle.envelope.bundle_id)
    assert "expired" in json.loads(last.details)["reason"]


def test_a_newer_bundle_supersedes_a_pending_import(
    hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    older = big_bundle(hub, media / "older", tmp_path / "models", commit=True)
    older.path(older.data_volumes()[0]).unlink()
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [older.root], spoke_clock())
    assert state_of(spoke) == [older.envelope.bundle_id]
    hub_clock.advance(dt.timedelta(minutes=1))
    assign(hub, SITE_ID, "classifier", "2")
    newer = write_v2_bundle(hub, plan_export(hub, SITE_ID, full=True), media / "newer")
    assert newer.envelope.sequence == older.envelope.sequence + 1
    import_media(spoke, [newer.root], spoke_clock())
    assert state_of(spoke) == [], "the superseded import's state was kept"
    entries = AuditLog(spoke.engine, "spoke").entries()
    [dropped] = [e for e in entries if e.action == ABANDON_ACTION]
    assert dropped.object == older.envelope.bundle_id
    assert "superseded" in json.loads(dropped.details)["reason"]
    assert (entries[-2].action, entries[-2].outcome) == ("spoke.import", "success")
    assert entries[-1] == dropped, "dropped after the newer bundle committed, not before"


def test_an_unencrypted_bundle_at_a_site_that_takes_one(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_IMPORT_REQUIRE_ENCRYPTION", "false")
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", recipients=None)
    assert bundle.envelope.site_part is not None and bundle.envelope.site_part.name == "site.tar"
    assert all(v.name.endswith(".tar") for v in bundle.data_volumes())
    first = bundle.data_volumes()[0]
    later = tmp_path / "later"
    later.mkdir()
    bundle.path(first).rename(later / first.name)
    with pytest.raises(NotEnoughVolumesError):
        import_media(spoke, [bundle.root], spoke_clock())
    assert state_of(spoke) == [bundle.envelope.bundle_id]
    result = import_media(spoke, [later], spoke_clock())
    assert result.volumes["read"] == [first.name]
    assert set(result.staged) == {"big@1", "classifier@1", "detector@1"}
