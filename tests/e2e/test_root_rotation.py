"""Root rotation through a bundle: a threshold of old and new root keys, or nothing.

The ceremony's roots are 2-of-3. A new root travels inside a bundle, next to
version 1; the spoke accepts it only when a threshold of the keys it trusts
*and* a threshold of the new root's own keys signed it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from helpers.bundlecraft import forge_bundle, rotated_root, with_next_root
from helpers.spokeenv import SITE_ID, SPOKE_TIME, World, accept_import, refuse_import, spoke_clock
from securesystemslib.signer import CryptoSigner
from sqlmodel import Session
from tuf.api.metadata import Metadata, Root

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import SignatureError
from airlock.hub.context import HubContext
from airlock.hub.export import commit_export, export, plan_export
from airlock.spoke.site import SpokeHome, TrustedMetadataFile
from airlock.spoke.status import read_status


@pytest.mark.parametrize(
    ("repository", "signed_by", "rotate"),
    [
        pytest.param(tufrepo.IMAGE, ["image-root-1"], False, id="image-one-of-two"),
        pytest.param(tufrepo.DIRECTOR, ["director-root-2"], False, id="director-one-of-two"),
        pytest.param(
            tufrepo.IMAGE, ["image-root-1", "image-root-2"], True, id="image-old-keys-only"
        ),
    ],
)
def test_a_root_signed_below_threshold_is_refused(
    world: World,
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    repository: str,
    signed_by: list[str],
    rotate: bool,
) -> None:
    """One old key is not enough; nor are the old keys alone when the new keys did not sign."""
    if rotate:  # v2 replaces two of the three root keys; only the old ones sign it
        new_keys = [CryptoSigner.generate_ed25519().public_key for _ in range(2)]
        root = rotated_root(world.ceremony, repository, signed_by, revoke=signed_by, add=new_keys)
    else:
        root = rotated_root(world.ceremony, repository, signed_by)
    plan = plan_export(hub, SITE_ID)
    metadata = with_next_root(plan.metadata, repository, root)
    forge_bundle(hub, plan, media / "bundle", metadata=metadata)
    error = refuse_import(spoke, media / "bundle", SignatureError, "not signed by a threshold")
    assert f"{repository.capitalize()} metadata" in error.message


def test_a_valid_root_rotation_is_trusted_from_then_on(
    world: World, hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path
) -> None:
    """v2 drops image-root-1 for a new key, signed by 2 old keys and 2 of its own."""
    new_root_key = CryptoSigner.generate_ed25519()
    root = rotated_root(
        world.ceremony,
        tufrepo.IMAGE,
        ["image-root-1", "image-root-2"],
        revoke=["image-root-1"],
        add=[new_root_key.public_key],
        extra_signers=[new_root_key],
    )
    plan = plan_export(hub, SITE_ID)
    rotation = dataclasses.replace(
        plan, metadata=with_next_root(plan.metadata, tufrepo.IMAGE, root)
    )
    commit_export(hub, rotation, media / "rotation")  # recorded: the next export is sequence 2

    accept_import(spoke, media / "rotation")

    status = read_status(spoke).to_dict()
    assert status["trusted_roots"] == {"image": 2, "director": 1}
    trusted = _trusted_root(spoke)
    assert trusted.signed.version == 2
    assert new_root_key.public_key.keyid in trusted.signed.roles[Root.type].keyids
    assert world.ceremony.record.key("image-root-1").keyid not in trusted.signed.keys

    # The next ordinary export carries only root v1: the spoke keeps trusting v2.
    hub_clock.advance(dt.timedelta(minutes=10))
    export(hub, SITE_ID, media / "next")
    later = spoke_clock(SPOKE_TIME + dt.timedelta(hours=1))
    assert accept_import(spoke, media / "next", later).sequence == 2
    assert read_status(spoke).image_root_version == 2


def _trusted_root(spoke: SpokeHome) -> Metadata[Root]:
    with Session(spoke.engine) as session:
        row = session.get(TrustedMetadataFile, (tufrepo.IMAGE, "root.json"))
        assert row is not None
        return Metadata[Root].from_bytes(row.data)
