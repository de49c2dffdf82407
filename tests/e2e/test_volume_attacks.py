"""Attacks on format-2 media: each refused, nothing staged, audited — naming the place.

Volumes are edited as a courier (or anyone holding only the site's public key)
could: swapped, duplicated, truncated, taken from another bundle or another
site, rebuilt with a chunk moved to another volume; parity that lies; more
damage than parity can repair. Refusals that more media can fix keep what was
verified (exit 9, ``spoke.import.partial``); a per-site part whose chunk index
is not the one the Director signed (something only the envelope key's holder
could ship) is refused outright and keeps nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, RecordingSecrets, World, spoke_clock
from helpers.v2craft import V2Bundle, write_v2_bundle
from helpers.v2env import (
    assert_v2_refused,
    big_bundle,
    site_identity,
    snapshot,
    volume_entries,
    write_volume,
)

from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.errors import (
    AirlockError,
    IntegrityError,
    MediaError,
    NotEnoughVolumesError,
    SignatureError,
)
from airlock.hub.context import HubContext
from airlock.hub.export import plan_export
from airlock.spoke.importing import PARTIAL_ACTION, import_media
from airlock.spoke.site import SpokeHome


def refuse(
    spoke: SpokeHome,
    dirs: list[Path],
    expected: type[AirlockError],
    *,
    state: str,
    action: str = "spoke.import",
) -> tuple[AirlockError, dict[str, object]]:
    before = snapshot(spoke)
    with pytest.raises(expected) as caught:
        import_media(spoke, dirs, spoke_clock())
    details = assert_v2_refused(spoke, before, caught.value, expected, action=action, state=state)
    return caught.value, details


def incomplete(spoke: SpokeHome, bundle: V2Bundle) -> tuple[str, dict[str, object]]:
    """Imports ``bundle``, expecting exit 9 with the state kept; returns message and details."""
    error, details = refuse(
        spoke, [bundle.root], NotEnoughVolumesError, state="kept", action=PARTIAL_ACTION
    )
    assert error.exit_code == 9
    return error.message, details


def damage_of(details: dict[str, object], name: str) -> str:
    [volume] = [v for v in details["volumes"] if v["name"] == name]  # type: ignore[attr-defined]
    assert volume["state"] == "damaged", volume
    return "; ".join(volume["damage"])


@pytest.fixture
def bundle(hub: HubContext, media: Path, tmp_path: Path) -> V2Bundle:
    return big_bundle(hub, media / "bundle", tmp_path / "models")


def test_two_swapped_volumes_are_named_and_nothing_is_staged(
    spoke: SpokeHome, bundle: V2Bundle
) -> None:
    one, two = bundle.data_volumes()[:2]
    tmp = bundle.path(one).with_suffix(".swap")
    bundle.path(one).rename(tmp)
    bundle.path(two).rename(bundle.path(one))
    tmp.rename(bundle.path(two))
    message, details = incomplete(spoke, bundle)
    assert one.label in message and two.label in message
    assert f"volume {two.number}" in damage_of(details, one.name)
    assert f"volume {one.number}" in damage_of(details, two.name)


def test_a_duplicated_volume_is_damage_not_a_second_copy(
    spoke: SpokeHome, bundle: V2Bundle
) -> None:
    one, two = bundle.data_volumes()[:2]
    shutil.copyfile(bundle.path(one), bundle.path(two))
    message, details = incomplete(spoke, bundle)
    assert two.label in message
    assert f"volume {one.number}" in damage_of(details, two.name)


def test_a_truncated_volume_is_named_with_where_it_ends(spoke: SpokeHome, bundle: V2Bundle) -> None:
    last = bundle.data_volumes()[-1]
    os.truncate(bundle.path(last), last.size - 70_000)
    message, details = incomplete(spoke, bundle)
    assert last.label in message
    assert damage_of(details, last.name)


def test_a_flipped_byte_in_a_data_volume_is_named_at_its_chunk(
    spoke: SpokeHome, bundle: V2Bundle
) -> None:
    """Format 1's flipped payload byte: data volumes carry no signed hash, age authenticates
    every 64 KiB, so the damage is found at its chunk; what the other volumes held is kept."""
    second = bundle.data_volumes()[1]
    data = bytearray(bundle.path(second).read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.path(second).write_bytes(bytes(data))
    message, details = incomplete(spoke, bundle)
    assert second.label in message and "need this volume" in message
    assert "chunk" in damage_of(details, second.name)
    others = [v for v in details["volumes"] if v["name"] != second.name]  # type: ignore[attr-defined]
    assert others and all(v["state"] == "verified" for v in others)


def test_a_flipped_byte_in_a_data_volume_is_rebuilt_from_parity(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", parity=1)
    first = bundle.data_volumes()[0]
    data = bytearray(bundle.path(first).read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.path(first).write_bytes(bytes(data))
    result = import_media(spoke, [bundle.root], spoke_clock())
    assert result.volumes is not None and result.volumes["rebuilt"] == [first.name]
    assert "big@1" in result.staged


def test_a_volume_of_another_bundle_is_refused(
    hub: HubContext, spoke: SpokeHome, bundle: V2Bundle, media: Path
) -> None:
    other = write_v2_bundle(
        hub,
        bundle.plan,
        media / "other",
        volume_size=bundle.envelope.volumes[0].size,
    )
    target = bundle.data_volumes()[1]
    shutil.copyfile(other.path(other.data_volumes()[1]), bundle.path(target))
    message, details = incomplete(spoke, bundle)
    assert target.label in message
    assert other.envelope.series[0].id in damage_of(details, target.name)


def test_a_volume_of_another_site_is_refused(
    hub: HubContext, world: World, spoke: SpokeHome, bundle: V2Bundle, media: Path
) -> None:
    theirs = (world.other_site.identity.age_recipient,)
    other = write_v2_bundle(hub, bundle.plan, media / "other", recipients=theirs)
    target = bundle.data_volumes()[0]
    shutil.copyfile(other.path(other.data_volumes()[0]), bundle.path(target))
    message, details = incomplete(spoke, bundle)
    assert target.label in message
    assert "not encrypted to this site" in damage_of(details, target.name)


def test_a_chunk_moved_to_another_volume_is_refused(spoke: SpokeHome, bundle: V2Bundle) -> None:
    """Every chunk keeps its true hash; only the layout's placement is broken."""
    one, two = bundle.data_volumes()[:2]
    key = site_identity(spoke)
    recipient = bundle.recipients[0] if bundle.recipients else ""
    first, second = volume_entries(bundle.path(one), key), volume_entries(bundle.path(two), key)
    moved = first.pop()  # the last chunk of volume 1 …
    second.insert(1, moved)  # … now right after volume 2's header
    write_volume(bundle.path(one), first, recipient)
    write_volume(bundle.path(two), second, recipient)
    message, details = incomplete(spoke, bundle)
    assert one.label in message and two.label in message
    assert moved[0] in damage_of(details, two.name)


def test_lying_parity_is_named_and_not_trusted(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", parity=1)
    [parity] = bundle.parity_volumes()
    lost = bundle.data_volumes()[0]
    bundle.path(lost).unlink()
    data = bytearray(bundle.path(parity).read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.path(parity).write_bytes(bytes(data))
    message, details = incomplete(spoke, bundle)
    assert parity.label in message and lost.label in message
    assert "SHA-256" in damage_of(details, parity.name)


def test_more_damage_than_parity_repairs_says_what_is_needed(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models", parity=1)
    first, second = bundle.data_volumes()[:2]
    bundle.path(first).unlink()
    os.truncate(bundle.path(second), 5000)
    message, _details = incomplete(spoke, bundle)
    assert "need any 1 more of" in message or "need this volume" in message
    assert first.label in message and second.label in message


def test_an_index_that_is_not_the_signed_one_is_refused_and_nothing_kept(
    hub: HubContext, spoke: SpokeHome, secrets: RecordingSecrets, media: Path, tmp_path: Path
) -> None:
    """A holder of the envelope key re-signs a per-site part whose index lies about a chunk."""
    bundle = big_bundle(hub, media / "bundle", tmp_path / "models")
    big = max(bundle.plan.blobs, key=lambda b: b.length).sha256
    index = ChunkIndex.from_bytes(bundle.indexes[big])
    forged = dataclasses.replace(index, chunks=("0" * 64, *index.chunks[1:]))
    bundle.rewrite_site_part(hub, indexes={**bundle.indexes, big: forged.to_bytes()})
    error, details = refuse(spoke, [bundle.root], IntegrityError, state="none")
    assert "does not match the signed digest" in error.message
    assert details["state"] == "dropped"


def test_a_re_signed_envelope_with_another_site_part_hash_is_refused(
    hub: HubContext, spoke: SpokeHome, bundle: V2Bundle
) -> None:
    part = bundle.envelope.site_part
    assert part is not None
    bundle.resign(hub, site_part=dataclasses.replace(part, sha256="0" * 64))
    error, _details = refuse(spoke, [bundle.root], IntegrityError, state="none")
    assert "per-site part" in error.message


def test_an_edited_envelope_is_refused_before_anything_is_kept(
    spoke: SpokeHome, secrets: RecordingSecrets, bundle: V2Bundle
) -> None:
    from helpers.v2craft import edit_envelope_json

    edit_envelope_json(bundle, lambda doc: doc["signed"]["volumes"][0].update(size=1))
    refuse(spoke, [bundle.root], SignatureError, state="none")
    assert secrets.asked == [], "the site identity was unlocked for an unsigned envelope"


def test_different_envelopes_on_two_media_are_refused(
    hub: HubContext, spoke: SpokeHome, bundle: V2Bundle, media: Path, tmp_path: Path
) -> None:
    other = write_v2_bundle(hub, plan_export(hub, SITE_ID), media / "other")
    error, _details = refuse(spoke, [bundle.root, other.root], MediaError, state="none")
    assert "differs from" in error.message


def test_the_same_volume_in_two_directories_is_refused_by_name(
    spoke: SpokeHome, bundle: V2Bundle, tmp_path: Path
) -> None:
    first, second = bundle.scatter(tmp_path / "couriers", [bundle.data_volumes()[:2]] * 2)
    error, _details = refuse(spoke, [first, second], MediaError, state="none")
    assert bundle.data_volumes()[0].name in error.message and "two directories" in error.message


def test_a_bundle_for_another_site_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    from airlock.bundles.errors import WrongSiteError

    other = write_v2_bundle(hub, plan_export(hub, OTHER_SITE_ID), media / "theirs")
    refuse(spoke, [other.root], WrongSiteError, state="none")
