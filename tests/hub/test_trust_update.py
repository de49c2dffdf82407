"""`airlock hub trust update`: adopt a rotation ceremony's roots and targets, or change nothing.

Every ceremony output here is a copy of the session's real ceremony with later
versions signed by the officers' real offline keys (:mod:`helpers.rotation`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, HUB_TIME, tree_digest
from helpers.identities import SiteKeys
from helpers.rotation import RotationCeremony, rotate_roots
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import DelegatedRole, Metadata, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import make_engine
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    FreshnessError,
    NotFoundError,
    SecretError,
    SignatureError,
    TrustError,
)
from airlock.bundles.keys import KeyRef
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub import repos as image_repo
from airlock.hub.context import HubContext, load_director_roots, load_image_repo, open_hub
from airlock.hub.export import commit_export, plan_export
from airlock.hub.sites import add_site, hub_status
from airlock.hub.trust import update_trust

IMAGE, DIRECTOR = tufrepo.IMAGE, tufrepo.DIRECTOR
ACTION = "hub.trust.update"
LATER = HUB_TIME + dt.timedelta(days=400)
"""A later expiry for re-signed roles (the ceremony's expire after 365 and 180 days)."""


@pytest.fixture
def rotation(ceremony: CeremonyResult, tmp_path: Path) -> RotationCeremony:
    """A copy of the hub's ceremony, to add later versions to."""
    return RotationCeremony.copy_of(ceremony.out_dir, tmp_path / "rotation")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_entries(hub: HubContext) -> list[Any]:
    return AuditLog(hub.engine, "hub").entries()


# --- adopting ------------------------------------------------------------------------------------


def test_update_adopts_rotated_roots_and_resigned_targets(
    hub: HubContext, ceremony: CeremonyResult, rotation: RotationCeremony, site: SiteKeys
) -> None:
    add_site(hub, site.identity)
    pending = plan_export(hub, "plant-7")  # planned under the old trust
    home = hub.home
    old = load_image_repo(hub)
    old_targets_file = (home.image_dir / "targets.json").read_bytes()
    image_v2 = rotate_roots(rotation, IMAGE, 1)
    director_v2 = rotate_roots(rotation, DIRECTOR, 1)
    targets_v2 = rotation.add_targets(["image-targets-1"], expires=LATER)

    update = update_trust(hub, rotation.directory)

    # every old root stays byte for byte; the new ones are the ceremony's bytes
    assert (home.image_dir / "1.root.json").read_bytes() == ceremony.image_root.read_bytes()
    assert (home.director_root_dir / "1.root.json").read_bytes() == (
        ceremony.director_root.read_bytes()
    )
    for directory, repository in ((home.image_dir, IMAGE), (home.director_root_dir, DIRECTOR)):
        assert (directory / "2.root.json").read_bytes() == (
            rotation.directory / repository / "2.root.json"
        ).read_bytes()
        assert not (directory / "3.root.json").exists()

    image = load_image_repo(hub)
    assert image.root.signed == image_v2.signed
    assert load_director_roots(hub).root.signed == director_v2.signed
    assert image.targets.signed == targets_v2.signed
    assert image.models.signed.version == old.models.signed.version  # delegation unchanged
    image_repo.verify_delegations(image)

    # snapshot lists the new targets; timestamp points at the new snapshot; both under root v2
    snapshot_bytes = (home.image_dir / "snapshot.json").read_bytes()
    snapshot = Metadata[Snapshot].from_bytes(snapshot_bytes)
    timestamp = Metadata[Timestamp].from_bytes((home.image_dir / "timestamp.json").read_bytes())
    targets_file = (home.image_dir / "targets.json").read_bytes()
    assert snapshot.signed.meta["targets.json"].version == 2
    assert snapshot.signed.meta["targets.json"].hashes == {"sha256": sha256(targets_file)}
    assert old.snapshot is not None
    assert snapshot.signed.version == old.snapshot.signed.version + 1
    assert timestamp.signed.snapshot_meta.version == snapshot.signed.version
    assert timestamp.signed.snapshot_meta.hashes == {"sha256": sha256(snapshot_bytes)}
    root = image.root.signed
    root.verify_delegate("snapshot", snapshot.signed_bytes, snapshot.signatures)
    root.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)

    # the audit entry: old and new versions and SHA-256s
    last = audit_entries(hub)[-1]
    assert (last.action, last.outcome, last.object) == (ACTION, "success", str(rotation.directory))
    details = json.loads(last.details)
    assert details == update.to_dict() | {
        "image_snapshot_version": snapshot.signed.version,
        "image_timestamp_version": timestamp.signed.version,
    }
    assert details["ceremony_id"] == rotation.record.ceremony_id
    image_root = details["roles"]["image root"]
    assert (image_root["old_version"], image_root["new_version"]) == (1, 2)
    assert image_root["old_sha256"] == sha256(ceremony.image_root.read_bytes())
    assert image_root["new_sha256"] == sha256((home.image_dir / "2.root.json").read_bytes())
    assert image_root["added"] == [{"version": 2, "sha256": image_root["new_sha256"]}]
    targets = details["roles"]["image targets"]
    assert (targets["old_version"], targets["new_version"]) == (1, 2)
    assert (targets["old_sha256"], targets["new_sha256"]) == (
        sha256(old_targets_file),
        sha256(targets_file),
    )
    assert details["roles"]["director root"]["new_version"] == 2
    assert HUB_PASSPHRASE not in last.details
    assert verify_engine(hub.engine).ok

    # status shows the new versions and expiries
    roles = hub_status(hub)["roles"]
    assert (roles["image root"]["version"], roles["image root"]["expires"]) == (
        2,
        utc_iso(image_v2.signed.expires),
    )
    assert (roles["image targets"]["version"], roles["image targets"]["expires"]) == (
        2,
        utc_iso(LATER),
    )
    assert roles["director root"]["version"] == 2

    # an export planned before the update is refused; a new one carries the whole chain
    with pytest.raises(ConflictError, match="changed since"):
        commit_export(hub, pending, home.root.parent / "stale-bundle")
    names = [name for name, _ in plan_export(hub, "plant-7").metadata]
    for expected in (
        "metadata/image/1.root.json",
        "metadata/image/2.root.json",
        "metadata/image/2.targets.json",
        "metadata/director/1.root.json",
        "metadata/director/2.root.json",
    ):
        assert expected in names
    assert "metadata/image/1.targets.json" not in names


def test_update_adopts_roots_alone(hub: HubContext, rotation: RotationCeremony) -> None:
    """Targets unchanged: its file is not rewritten, the Image timestamp still moves on."""
    before = tree_digest(hub.home.root)
    old_timestamp = load_image_repo(hub).timestamp
    rotate_roots(rotation, IMAGE, 1)
    rotate_roots(rotation, IMAGE, 2)

    update = update_trust(hub, rotation.directory)

    assert [(r.role, r.old_version, r.new_version) for r in update.roles] == [
        ("image root", 1, 3),
        ("image targets", 1, 1),
        ("director root", 1, 1),
    ]
    after = tree_digest(hub.home.root)
    changed = sorted(p for p in after if before.get(p) != after[p])
    assert changed == [
        "repository/image/2.root.json",
        "repository/image/3.root.json",
        "repository/image/snapshot.json",
        "repository/image/timestamp.json",
    ]
    new_timestamp = load_image_repo(hub).timestamp
    assert old_timestamp is not None and new_timestamp is not None
    assert new_timestamp.signed.version == old_timestamp.signed.version + 1


def test_update_adopts_resigned_targets_alone(hub: HubContext, rotation: RotationCeremony) -> None:
    before = tree_digest(hub.home.root)
    rotation.add_targets(["image-targets-2"], expires=LATER)

    update = update_trust(hub, rotation.directory)

    assert [r.role for r in update.roles if r.changed] == ["image targets"]
    after = tree_digest(hub.home.root)
    assert sorted(p for p in after if before.get(p) != after[p]) == [
        "repository/image/snapshot.json",
        "repository/image/targets.json",
        "repository/image/timestamp.json",
    ]
    assert load_image_repo(hub).targets.signed.version == 2


# --- refusing ------------------------------------------------------------------------------------

Builder = Callable[[HubContext, RotationCeremony, Path], Path]
"""Makes (and may first adopt) ceremony outputs; returns the one the test hands the hub."""


def _adopt(hub: HubContext, ceremony: RotationCeremony) -> None:
    update_trust(hub, ceremony.directory)


def fork(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    adopted = rotation.fork(tmp_path / "adopted")
    rotate_roots(adopted, IMAGE, 1)
    _adopt(hub, adopted)
    # another v2, built on v1 without the hub's v2, and a v3 on top of it
    rotation.add_root(IMAGE, ["image-root-1", "image-root-3"], expires=LATER)
    rotation.add_root(IMAGE, ["image-root-1", "image-root-3"], expires=LATER)
    return rotation.directory


def reformatted_root(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    """v1 with the same signatures, serialised differently: still not the hub's bytes."""
    path = rotation.directory / IMAGE / "1.root.json"
    path.write_text(json.dumps(json.loads(path.read_bytes()), separators=(",", ":")))
    rotate_roots(rotation, IMAGE, 1)
    return rotation.directory


def older(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    adopted = rotation.fork(tmp_path / "adopted")
    rotate_roots(adopted, DIRECTOR, 1)
    _adopt(hub, adopted)
    rotation.add_targets(["image-targets-1"], expires=LATER)  # newer targets, older Director
    return rotation.directory


def same_as_hub(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    return rotation.directory


def adopted_already(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    rotate_roots(rotation, IMAGE, 1)
    rotation.add_targets(["image-targets-1"], expires=LATER)
    _adopt(hub, rotation)
    return rotation.directory


def targets_backwards(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    adopted = rotation.fork(tmp_path / "adopted")
    adopted.add_targets(["image-targets-1"], version=3, expires=LATER)
    _adopt(hub, adopted)
    rotation.add_targets(["image-targets-1"], expires=LATER)  # version 2
    rotate_roots(rotation, IMAGE, 1)
    return rotation.directory


def targets_same_version_other_bytes(
    hub: HubContext, rotation: RotationCeremony, tmp_path: Path
) -> Path:
    rotation.add_targets(["image-targets-2"], version=1, expires=LATER)
    rotate_roots(rotation, IMAGE, 1)
    return rotation.directory


def targets_new_delegation(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    outsider = CryptoSigner.generate_ed25519().public_key

    def delegate(targets: Targets) -> None:
        assert targets.delegations is not None and targets.delegations.roles is not None
        targets.delegations.keys[outsider.keyid] = outsider
        targets.delegations.roles["outsider"] = DelegatedRole(
            "outsider", [outsider.keyid], 1, True, paths=["classifier/*/*"]
        )

    rotation.add_targets(["image-targets-1"], expires=LATER, edit=delegate)
    return rotation.directory


def other_online_key(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    rotate_roots(rotation, IMAGE, 1)
    record_file = rotation.directory / "ceremony.json"
    record = json.loads(record_file.read_bytes())
    ref = KeyRef.from_dict(record["online_keys"]["image-snapshot"])
    other = CryptoSigner.generate_ed25519().public_key
    record["online_keys"]["image-snapshot"] = KeyRef(ref.name, ref.uri, other).to_dict()
    record_file.write_text(json.dumps(record))
    return rotation.directory


def below_threshold(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    rotation.add_root(IMAGE, ["image-root-1"], expires=LATER)  # 1 of 2
    return rotation.directory


def broken_after_v2(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    """v2 is a valid rotation; v3 is signed by a threshold of its own keys, not of v2's."""
    rotate_roots(rotation, DIRECTOR, 1)
    rotation.new_key("director-root-x")
    rotation.new_key("director-root-y")
    rotation.add_root(
        DIRECTOR,
        ["director-root-x", "director-root-y"],
        revoke=["director-root-2", "director-root-3"],
        add=["director-root-x", "director-root-y"],
    )
    return rotation.directory


def old_targets_keys_after_rotation(
    hub: HubContext, rotation: RotationCeremony, tmp_path: Path
) -> Path:
    """Root v2 revokes image-targets-1; the targets are still signed by it alone."""
    rotation.add_root(
        IMAGE, ["image-root-1", "image-root-2", "image-root-3"], targets_revoke=["image-targets-1"]
    )
    rotation.add_targets(["image-targets-1"], expires=LATER)
    return rotation.directory


def expired_root(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    rotation.add_root(
        IMAGE, ["image-root-1", "image-root-2"], expires=HUB_TIME - dt.timedelta(minutes=1)
    )
    return rotation.directory


def expired_targets(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    rotation.add_targets(["image-targets-1"], expires=HUB_TIME - dt.timedelta(seconds=1))
    return rotation.directory


def not_a_ceremony(hub: HubContext, rotation: RotationCeremony, tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


REFUSALS = [
    pytest.param(fork, TrustError, "forked", id="fork"),
    pytest.param(reformatted_root, TrustError, "Image root version 1 .* forked", id="v1-bytes"),
    pytest.param(older, FreshnessError, "Director root history ends at version 1", id="older"),
    pytest.param(same_as_hub, ConflictError, "nothing in .* is newer", id="nothing-newer"),
    pytest.param(adopted_already, ConflictError, "nothing in .* is newer", id="adopted-already"),
    pytest.param(targets_backwards, FreshnessError, "roll back", id="targets-backwards"),
    pytest.param(
        targets_same_version_other_bytes, TrustError, "version 1 differs", id="targets-same-version"
    ),
    pytest.param(targets_new_delegation, TrustError, "delegations", id="targets-delegation"),
    pytest.param(other_online_key, TrustError, "image-snapshot differ", id="online-keys"),
    pytest.param(below_threshold, SignatureError, "root version 2", id="chain-v2"),
    pytest.param(
        broken_after_v2,
        SignatureError,
        "Director root version 3 is not signed by a threshold of the previous",
        id="chain-v3",
    ),
    pytest.param(
        old_targets_keys_after_rotation, SignatureError, "Image targets", id="revoked-targets-key"
    ),
    pytest.param(expired_root, FreshnessError, "Image root version 2 expired", id="expired-root"),
    pytest.param(
        expired_targets, FreshnessError, "Image targets version 2 expired", id="expired-targets"
    ),
    pytest.param(not_a_ceremony, NotFoundError, "ceremony.json", id="not-a-ceremony"),
]


@pytest.mark.parametrize(("build", "expected", "match"), REFUSALS)
def test_update_refuses_and_changes_nothing(
    hub: HubContext,
    rotation: RotationCeremony,
    tmp_path: Path,
    build: Builder,
    expected: type[AirlockError],
    match: str,
) -> None:
    directory = build(hub, rotation, tmp_path)
    before = tree_digest(hub.home.root)
    entries = len(audit_entries(hub))

    with pytest.raises(expected, match=match) as caught:
        update_trust(hub, directory)

    assert type(caught.value) is expected
    assert caught.value.hint, "a refusal says what to do"
    assert tree_digest(hub.home.root) == before
    log = audit_entries(hub)
    assert len(log) == entries + 1
    assert (log[-1].action, log[-1].outcome, log[-1].object) == (ACTION, "refused", str(directory))
    details = json.loads(log[-1].details)
    assert (details["error"], details["message"]) == (expected.__name__, caught.value.message)
    assert verify_engine(hub.engine).ok


def test_update_with_a_wrong_passphrase_changes_nothing(
    hub: HubContext, rotation: RotationCeremony, clock: FixedClock
) -> None:
    rotate_roots(rotation, IMAGE, 1)
    before = tree_digest(hub.home.root)
    wrong = open_hub(hub.home.root, lambda _name: "not the hub passphrase", clock=clock)
    try:
        with pytest.raises(SecretError):
            update_trust(wrong, rotation.directory)
    finally:
        wrong.close()
    assert tree_digest(hub.home.root) == before
    last = audit_entries(hub)[-1]
    assert (last.action, last.outcome) == (ACTION, "failure")


def test_update_refuses_a_root_expired_by_the_hub_clock(
    hub: HubContext, rotation: RotationCeremony, clock: FixedClock
) -> None:
    """The hub's clock decides: a root valid today is refused once the clock passes its expiry."""
    rotation.add_root(
        IMAGE, ["image-root-1", "image-root-2"], expires=HUB_TIME + dt.timedelta(days=2)
    )
    clock.advance(dt.timedelta(days=3))
    before = tree_digest(hub.home.root)
    with pytest.raises(FreshnessError, match="expired"):
        update_trust(hub, rotation.directory)
    assert tree_digest(hub.home.root) == before


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Result]]:
    """Runs `airlock hub ARGS…` with the passphrase and home in the environment."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(tmp_path / "cli-home"))
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(main, ["hub", *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    yield run


def _error_lines(result: Result, message: str) -> None:
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert lines[1].startswith("  what to do: ") and lines[1][14:], result.stderr
    assert result.stdout == ""


def test_cli_trust_update(
    cli: Callable[..., Result],
    ceremony: CeremonyResult,
    rotation: RotationCeremony,
    tmp_path: Path,
) -> None:
    cli("init", "--from", str(ceremony.out_dir))
    base = rotation.fork(tmp_path / "base")  # still v1 everywhere
    rotate_roots(rotation, IMAGE, 1)
    rotate_roots(rotation, IMAGE, 2)
    rotate_roots(rotation, DIRECTOR, 1)
    rotation.add_targets(["image-targets-2"], expires=LATER)

    report = json.loads(cli("trust", "update", "--from", str(rotation.directory), "--json").stdout)
    assert report["ceremony_id"] == rotation.record.ceremony_id
    assert {role: r["new_version"] for role, r in report["roles"].items()} == {
        "image root": 3,
        "image targets": 2,
        "director root": 2,
    }
    assert report["roles"]["image root"]["added"][1]["version"] == 3
    status = json.loads(cli("status", "--json").stdout)["roles"]
    assert [status[r]["version"] for r in ("image root", "image targets", "director root")] == [
        3,
        2,
        2,
    ]
    assert status["image targets"]["expires"] == utc_iso(LATER)

    again = cli("trust", "update", "--from", str(rotation.directory), expect=3)
    _error_lines(again, "is newer than what the hub has")
    older = cli("trust", "update", "--from", str(base.directory), expect=14)
    _error_lines(older, "root history ends at version 1")

    broken = rotation.fork(tmp_path / "broken")
    broken.add_root(IMAGE, ["image-root-3"])  # v4 with one of v3's keys
    _error_lines(cli("trust", "update", "--from", str(broken.directory), expect=11), "version 4")

    forked = base.fork(tmp_path / "forked")
    forked.add_root(IMAGE, ["image-root-1", "image-root-2"])
    _error_lines(cli("trust", "update", "--from", str(forked.directory), expect=16), "forked")

    expired = rotation.fork(tmp_path / "expired")
    expired.add_targets(["image-targets-2"], expires=HUB_TIME - dt.timedelta(days=1))
    _error_lines(cli("trust", "update", "--from", str(expired.directory), expect=14), "expired")

    engine = make_engine(f"sqlite:///{tmp_path / 'cli-home' / 'hub.db'}")
    try:
        outcomes = [e.outcome for e in AuditLog(engine, "hub").entries() if e.action == ACTION]
        assert outcomes == ["success", "refused", "refused", "refused", "refused", "refused"]
        assert verify_engine(engine).ok
    finally:
        engine.dispose()


def test_cli_trust_update_human_output(
    cli: Callable[..., Result], ceremony: CeremonyResult, rotation: RotationCeremony
) -> None:
    cli("init", "--from", str(ceremony.out_dir))
    rotate_roots(rotation, DIRECTOR, 1)
    out = cli("trust", "update", "--from", str(rotation.directory)).stdout
    assert "trust updated" in out and rotation.record.ceremony_id in out
    assert "director root" in out and "unchanged" in out
