"""Key rotation end to end: officers rotate, the hub adopts, the site walks the chain.

The rotations are made by :mod:`helpers.rotation` from a copy of the world's
real ceremony, signed with the officers' real offline keys; the hub adopts
them with ``update_trust`` (airlock.hub.trust) and its next export carries every root
version. Forged bundles use the hub's real online and envelope keys, so only
the roots' and targets' own signatures stand between them and the site.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from helpers.bundlecraft import forge_bundle, with_next_root
from helpers.rotation import RotationCeremony, resign_image_targets, rotate_roots
from helpers.spokeenv import (
    SITE_ID,
    SPOKE_TIME,
    World,
    accept_import,
    refuse_import,
    spoke_clock,
)
from sqlmodel import Session
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import SignatureError
from airlock.hub.context import HubContext
from airlock.hub.export import export, plan_export
from airlock.hub.trust import update_trust
from airlock.spoke.site import SpokeHome, TrustedMetadataFile
from airlock.spoke.status import read_status

IMAGE, DIRECTOR = tufrepo.IMAGE, tufrepo.DIRECTOR
LATER = SPOKE_TIME + dt.timedelta(hours=1)
"""The spoke's clock for every import after the first."""


@pytest.fixture
def rotation(world: World, tmp_path: Path) -> RotationCeremony:
    """A copy of the world's ceremony, to add later versions to."""
    return RotationCeremony.copy_of(world.ceremony.out_dir, tmp_path / "rotation")


def trusted(spoke: SpokeHome, repository: str, name: str) -> bytes:
    """A file of the spoke's trusted TUF metadata."""
    with Session(spoke.engine) as session:
        row = session.get(TrustedMetadataFile, (repository, name))
        assert row is not None, f"the spoke does not trust {repository}/{name}"
        return row.data


def trusted_roots(spoke: SpokeHome) -> dict[str, int]:
    roots: dict[str, int] = read_status(spoke).to_dict()["trusted_roots"]
    return roots


def test_a_spoke_walks_two_rotations_adopted_in_one_update(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    rotation: RotationCeremony,
) -> None:
    export(hub, SITE_ID, media / "before")
    accept_import(spoke, media / "before")
    assert trusted_roots(spoke) == {"image": 1, "director": 1}

    for repository in (IMAGE, DIRECTOR):  # two rotations of each: root keys 1, then 2, replaced
        rotate_roots(rotation, repository, 1)
        rotate_roots(rotation, repository, 2)
    rotation.add_targets(["image-targets-2"], expires=SPOKE_TIME + dt.timedelta(days=200))
    update = update_trust(hub, rotation.directory)
    assert [(r.role, r.old_version, r.new_version) for r in update.roles] == [
        ("image root", 1, 3),
        ("image targets", 1, 2),
        ("director root", 1, 3),
    ]

    hub_clock.advance(dt.timedelta(minutes=10))
    export(hub, SITE_ID, media / "rotated")
    result = accept_import(spoke, media / "rotated", spoke_clock(LATER))

    assert result.sequence == 2
    assert trusted_roots(spoke) == {"image": 3, "director": 3}
    for repository in (IMAGE, DIRECTOR):
        newest = (rotation.directory / repository / "3.root.json").read_bytes()
        assert trusted(spoke, repository, "root.json") == newest
        root = Metadata[Root].from_bytes(newest).signed
        record = rotation.record
        for revoked in (f"{repository}-root-1", f"{repository}-root-2"):
            assert record.key(revoked).keyid not in root.roles[Root.type].keyids
    targets = Metadata[Targets].from_bytes(trusted(spoke, IMAGE, "targets.json"))
    assert targets.signed.version == 2
    assert {m["model"] for m in read_status(spoke).to_dict()["staged_models"]} == {
        "classifier",
        "detector",
    }

    # v3 is the site's anchor from now on: the next bundle verifies from it
    hub_clock.advance(dt.timedelta(minutes=10))
    export(hub, SITE_ID, media / "after")
    assert accept_import(spoke, media / "after", spoke_clock(LATER)).sequence == 3
    assert trusted_roots(spoke) == {"image": 3, "director": 3}


def test_a_chain_that_breaks_after_the_adopted_rotation_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, rotation: RotationCeremony
) -> None:
    """The hub adopted v2; a v3 signed by a threshold of its own keys but not v2's is refused."""
    export(hub, SITE_ID, media / "before")
    accept_import(spoke, media / "before")
    rotate_roots(rotation, IMAGE, 1)
    update_trust(hub, rotation.directory)

    rotation.new_key("image-root-x")
    rotation.new_key("image-root-y")
    broken = rotation.add_root(
        IMAGE,
        ["image-root-x", "image-root-y"],
        revoke=["image-root-2", "image-root-3"],
        add=["image-root-x", "image-root-y"],
        write=False,
    )
    plan = plan_export(hub, SITE_ID)
    metadata = with_next_root(plan.metadata, IMAGE, tufrepo.to_bytes(broken))
    assert [n for n, _ in metadata if n.startswith("metadata/image/") and "root" in n] == [
        "metadata/image/1.root.json",
        "metadata/image/2.root.json",
        "metadata/image/3.root.json",
    ]
    forge_bundle(hub, plan, media / "broken", metadata=metadata)

    error = refuse_import(
        spoke, media / "broken", SignatureError, "not signed by a threshold", spoke_clock(LATER)
    )
    assert "Image metadata" in error.message and "root was signed by 0/2 keys" in error.message
    assert trusted_roots(spoke) == {"image": 1, "director": 1}

    # the same bundle without the forged v3 is accepted: only v3 broke it
    forge_bundle(hub, plan, media / "genuine")
    accept_import(spoke, media / "genuine", spoke_clock(LATER))
    assert trusted_roots(spoke) == {"image": 2, "director": 1}


def test_revoked_keys_sign_nothing_a_site_accepts(
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    rotation: RotationCeremony,
) -> None:
    """Rotation v2 drops image-root-1 from root and image-targets-1 from targets.

    Under root v1 (2-of-3 root, 1-of-2 targets) both keys would have counted.
    """
    rotation.new_key("image-root-new-1")
    rotation.add_root(
        IMAGE,
        ["image-root-1", "image-root-2", "image-root-3", "image-root-new-1"],
        revoke=["image-root-1"],
        add=["image-root-new-1"],
        targets_revoke=["image-targets-1"],
    )
    rotation.add_targets(["image-targets-2"])
    update_trust(hub, rotation.directory)
    export(hub, SITE_ID, media / "rotation")
    accept_import(spoke, media / "rotation")
    root = Metadata[Root].from_bytes(trusted(spoke, IMAGE, "root.json")).signed
    assert root.version == 2
    revoked_targets = rotation.key("image-targets-1").keyid
    assert revoked_targets not in root.roles[Targets.type].keyids
    assert rotation.key("image-root-1").keyid not in root.roles[Root.type].keyids

    hub_clock.advance(dt.timedelta(minutes=10))
    plan = plan_export(hub, SITE_ID)

    # Image targets v3 signed only by the revoked targets key
    stolen_targets = resign_image_targets(hub, plan.metadata, rotation.signers(["image-targets-1"]))
    forge_bundle(hub, plan, media / "revoked-targets", metadata=stolen_targets)
    error = refuse_import(
        spoke,
        media / "revoked-targets",
        SignatureError,
        "not signed by a threshold",
        spoke_clock(LATER),
    )
    assert "Image metadata" in error.message and "targets was signed by 0/1 keys" in error.message

    # root v3 that re-admits the revoked key, signed by it alone, and by it plus one valid key
    # (two of v1's keys: enough before the rotation)
    for index, signed_by in enumerate((["image-root-1"], ["image-root-1", "image-root-2"])):
        stolen_root = rotation.add_root(IMAGE, signed_by, add=["image-root-1"], write=False)
        metadata = with_next_root(plan.metadata, IMAGE, tufrepo.to_bytes(stolen_root))
        forge_bundle(hub, plan, media / f"revoked-root-{index}", metadata=metadata)
        error = refuse_import(
            spoke,
            media / f"revoked-root-{index}",
            SignatureError,
            "not signed by a threshold",
            spoke_clock(LATER),
        )
        assert "Image metadata" in error.message
        assert f"root was signed by {index}/2 keys" in error.message  # the revoked key counts 0
    assert trusted_roots(spoke) == {"image": 2, "director": 1}
    targets = Metadata[Targets].from_bytes(trusted(spoke, IMAGE, "targets.json"))
    assert targets.signed.version == 2

    # control: the same forgeries signed by keys v2 still trusts are accepted
    valid_root = rotation.add_root(
        IMAGE, ["image-root-2", "image-root-new-1"], add=["image-root-1"], write=False
    )
    valid_targets = resign_image_targets(hub, plan.metadata, rotation.signers(["image-targets-2"]))
    metadata = with_next_root(valid_targets, IMAGE, tufrepo.to_bytes(valid_root))
    forge_bundle(hub, plan, media / "valid", metadata=metadata)
    accept_import(spoke, media / "valid", spoke_clock(LATER))
    assert trusted_roots(spoke) == {"image": 3, "director": 1}
    targets = Metadata[Targets].from_bytes(trusted(spoke, IMAGE, "targets.json"))
    assert targets.signed.version == 3
