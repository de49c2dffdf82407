"""Attacks on the encrypted payload: integrity before decryption, then the strict unpacker.

An attacker on the medium can flip or cut bytes; that must be caught by the
sizes and hashes in the signed envelope before the site's identity is even
unlocked. Archives that only a compromised hub could ship (a validly signed
envelope around links, escaping paths or unlisted files) are built with the
hub's real keys and encrypted to the site: the strict unpacker must refuse
them and nothing may land on disk, inside the home or outside it.

Format 1's payload is one ``payload.age``: those tests export format 1
explicitly. Format 2 signs the size and SHA-256 of the per-site part
(``site.age``: metadata, chunk indexes, layout), which is read as strictly;
each format-1 attack has its format-2 counterpart on ``site.age`` below
(damaged or lying volumes are in test_volume_attacks.py).
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.bundlecraft import FORMAT_1 as V1
from helpers.bundlecraft import (
    blob_entries,
    envelope_signer,
    flip_byte,
    forge_bundle,
    forge_raw_bundle,
    link,
    metadata_entries,
    regular,
    replace_base64_char,
    resign_envelope,
    sha256_hex,
    tar_bytes,
)
from helpers.spokeenv import SITE_ID, RecordingSecrets, World, accept_import, refuse_import
from helpers.v2craft import V2Bundle, write_v2_bundle

from airlock.bundles.chunks import CHUNK_SIZE, ChunkIndex
from airlock.bundles.errors import DecryptionError, IntegrityError, UnsafeArchiveError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, assign, commit_export, export, plan_export
from airlock.spoke.site import SpokeHome


def test_one_flipped_payload_byte_is_refused_before_decryption(
    hub: HubContext, spoke: SpokeHome, secrets: RecordingSecrets, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle", media=V1)
    flip_byte(media / "bundle" / "payload.age", os.path.getsize(media / "bundle/payload.age") // 2)
    error = refuse_import(spoke, media / "bundle", IntegrityError, "does not match the SHA-256")
    assert "payload.age" in error.message and "copy the bundle" in error.hint
    assert secrets.asked == [], "the site identity was unlocked for a payload that fails its hash"


def test_a_truncated_payload_is_refused_by_its_size_before_decryption(
    hub: HubContext, spoke: SpokeHome, secrets: RecordingSecrets, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle", media=V1)
    payload = media / "bundle" / "payload.age"
    signed_size = payload.stat().st_size
    os.truncate(payload, signed_size - 4096)
    error = refuse_import(spoke, media / "bundle", IntegrityError, "the signed envelope says")
    assert f"{signed_size - 4096} bytes" in error.message and str(signed_size) in error.message
    assert secrets.asked == []


def test_a_payload_swapped_while_the_identity_is_unlocked_is_never_decrypted(
    hub: HubContext, spoke: SpokeHome, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker renames another payload over the checked one during the ~0.5 s unlock.

    The swapped-in file is a genuine payload for this site (a later bundle), so
    had it been decrypted it would have been parsed and, refused, blamed on the
    hub. The import must decrypt the bytes it verified and stage their content.
    """
    export(hub, SITE_ID, media / "bundle", media=V1)
    assign(hub, SITE_ID, "classifier", "2")
    export(hub, SITE_ID, media / "later", media=V1)
    unlock = spoke.age_identity

    def unlock_while_the_attacker_swaps() -> object:
        identity = unlock()
        os.replace(media / "later" / "payload.age", media / "bundle" / "payload.age")
        return identity

    monkeypatch.setattr(spoke, "age_identity", unlock_while_the_attacker_swaps)
    result = accept_import(spoke, media / "bundle")
    assert not (media / "later" / "payload.age").exists(), "the swap did not happen"
    assert (result.sequence, sorted(result.assigned)) == (1, ["classifier@1", "detector@1"])
    assert sorted(result.staged) == ["classifier@1", "detector@1"]


AGE_CHUNK = 64 * 1024
AGE_X25519_STANZA = b"age-encryption.org/v1\n-> X25519 "


def damage_age_header(payload: Path) -> None:
    """Changes one base64 character of the X25519 stanza's ephemeral share (byte 40).

    Whatever the character ('+' and '/' included), it is replaced by another of the
    alphabet: the share decodes to other bytes, so the file key never unwraps.
    """
    assert payload.read_bytes()[: len(AGE_X25519_STANZA)] == AGE_X25519_STANZA
    replace_base64_char(payload, 40)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        # A damaged recipient stanza cannot be told apart from another recipient's.
        pytest.param(
            damage_age_header,
            "not encrypted to this site",
            id="age-header",
        ),
        pytest.param(lambda p: flip_byte(p, -100), "damaged or truncated", id="last-chunk"),
        pytest.param(
            lambda p: os.truncate(p, p.stat().st_size - 100),
            "damaged or truncated",
            id="truncated",
        ),
    ],
)
def test_damaged_ciphertext_under_a_valid_envelope_fails_authenticated_decryption(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    damage: Callable[[Path], None],
    match: str,
) -> None:
    """What only a hub bug could make: the envelope signs the damaged bytes' hash.

    age's authentication must catch it. The late damage sits in the last of several
    age chunks, after the whole metadata section: the metadata has been verified and
    blobs are being written when decryption fails, and all of it must go again.
    """
    plan = plan_export(hub, SITE_ID)
    commit_export(hub, plan, media / "bundle", V1)
    payload = media / "bundle" / "payload.age"
    assert len(tar_bytes(metadata_entries(plan))) < AGE_CHUNK < payload.stat().st_size // 6
    damage(payload)
    resign_envelope(media / "bundle", [envelope_signer(hub)])
    refuse_import(spoke, media / "bundle", DecryptionError, match)
    assert secrets.asked == ["passphrase"]


def test_a_payload_encrypted_to_another_recipient_is_refused(
    world: World, hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    plan = plan_export(hub, SITE_ID)
    other = [world.other_site.identity.age_recipient]
    forge_bundle(hub, plan, media / "bundle", media=bundle_format, recipients=other)
    error = refuse_import(spoke, media / "bundle", DecryptionError, "not encrypted to this site")
    assert "identity" in error.hint or "exported for this site" in error.hint


UNSAFE_ENTRIES = {
    "parent-traversal": lambda p, outside: regular("../../staged/blobs/sha256/evil", b"pwned"),
    "absolute-path": lambda p, outside: regular(str(outside), b"pwned"),
    "symlink-blob": lambda p, outside: link(
        f"blobs/sha256/{p.blobs[0].sha256}", str(outside), tarfile.SYMTYPE
    ),
    "hardlink-blob": lambda p, outside: link(
        f"blobs/sha256/{p.blobs[0].sha256}", "metadata/image/1.root.json", tarfile.LNKTYPE
    ),
    "symlink-metadata": lambda p, outside: link(
        "metadata/image/evil.json", str(outside), tarfile.SYMTYPE
    ),
}
RULES = {
    "parent-traversal": r"'\.\.' components are refused",
    "absolute-path": "absolute paths are refused",
    "symlink-blob": "is a symbolic link; only regular files",
    "hardlink-blob": "is a hard link; only regular files",
    "symlink-metadata": "is a symbolic link; only regular files",
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ENTRIES))
def test_links_and_escaping_paths_in_a_signed_payload_are_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path, case: str
) -> None:
    plan = plan_export(hub, SITE_ID)
    outside = tmp_path / "outside" / "written-by-the-bundle"
    evil = UNSAFE_ENTRIES[case](plan, outside)
    entries = [*metadata_entries(plan), evil, *blob_entries(plan)]
    forge_raw_bundle(hub, plan, media / "bundle", entries)
    refuse_import(spoke, media / "bundle", UnsafeArchiveError, RULES[case])
    assert not outside.parent.exists()
    assert not (spoke.path / "staged" / "blobs" / "sha256" / "evil").exists()


def test_a_file_the_signed_metadata_does_not_list_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    plan = plan_export(hub, SITE_ID)
    extra = b"a file no signed target names"
    first, *rest = blob_entries(plan)
    entries = [*metadata_entries(plan), first, regular(f"blobs/sha256/{sha256_hex(extra)}", extra)]
    forge_raw_bundle(hub, plan, media / "bundle", [*entries, *rest])
    error = refuse_import(spoke, media / "bundle", UnsafeArchiveError, "not listed in the signed")
    assert sha256_hex(extra) in error.message
    assert not (spoke.blob_dir / sha256_hex(extra)).exists()


def test_metadata_outside_the_two_repositories_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    plan = plan_export(hub, SITE_ID)
    extra = regular("metadata/evil/1.root.json", b"{}")
    entries = [*metadata_entries(plan), extra, *blob_entries(plan)]
    forge_raw_bundle(hub, plan, media / "bundle", entries)
    refuse_import(spoke, media / "bundle", UnsafeArchiveError, "unexpected metadata entry")


# --- format 2: the per-site part (site.age) ------------------------------------------------------


def test_one_flipped_site_part_byte_is_refused_before_decryption(
    hub: HubContext, spoke: SpokeHome, secrets: RecordingSecrets, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle")
    part = media / "bundle" / "site.age"
    flip_byte(part, part.stat().st_size // 2)
    error = refuse_import(spoke, media / "bundle", IntegrityError, "does not match the SHA-256")
    assert "site.age" in error.message and "copy the bundle" in error.hint
    assert secrets.asked == [], "the site identity was unlocked for a part that fails its hash"


def test_a_truncated_site_part_is_refused_by_its_size_before_decryption(
    hub: HubContext, spoke: SpokeHome, secrets: RecordingSecrets, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle")
    part = media / "bundle" / "site.age"
    signed_size = part.stat().st_size
    os.truncate(part, signed_size - 100)
    error = refuse_import(spoke, media / "bundle", IntegrityError, "the signed envelope says")
    assert f"{signed_size - 100} bytes" in error.message and str(signed_size) in error.message
    assert secrets.asked == []


def test_a_site_part_swapped_while_the_identity_is_unlocked_is_never_decrypted(
    hub: HubContext, spoke: SpokeHome, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As format 1's payload: the per-site part is opened and checked before the unlock,
    and decrypted from that open file; the swapped-in part (a genuine later one for this
    site) is never read."""
    export(hub, SITE_ID, media / "bundle")
    assign(hub, SITE_ID, "classifier", "2")
    export(hub, SITE_ID, media / "later")
    unlock = spoke.age_identity_key

    def unlock_while_the_attacker_swaps() -> bytes:
        identity = unlock()
        os.replace(media / "later" / "site.age", media / "bundle" / "site.age")
        return identity

    monkeypatch.setattr(spoke, "age_identity_key", unlock_while_the_attacker_swaps)
    result = accept_import(spoke, media / "bundle")
    assert not (media / "later" / "site.age").exists(), "the swap did not happen"
    assert (result.sequence, sorted(result.assigned)) == (1, ["classifier@1", "detector@1"])
    assert sorted(result.staged) == ["classifier@1", "detector@1"]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        pytest.param(damage_age_header, "cannot be decrypted", id="age-header"),
        pytest.param(lambda p: flip_byte(p, -100), "cannot be decrypted", id="last-chunk"),
        pytest.param(
            lambda p: os.truncate(p, p.stat().st_size - 100), "cannot be decrypted", id="truncated"
        ),
    ],
)
def test_a_damaged_site_part_under_a_valid_envelope_fails_authenticated_decryption(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    damage: Callable[[Path], None],
    match: str,
) -> None:
    """What only a hub bug could make: the envelope signs the damaged part's hash."""
    plan = plan_export(hub, SITE_ID)
    commit_export(hub, plan, media / "bundle")
    damage(media / "bundle" / "site.age")
    resign_envelope(media / "bundle", [envelope_signer(hub)])
    error = refuse_import(spoke, media / "bundle", DecryptionError, match)
    assert "per-site part" in error.message
    assert secrets.asked == ["passphrase"]


def _v2(hub: HubContext, media: Path) -> V2Bundle:
    return write_v2_bundle(hub, plan_export(hub, SITE_ID), media / "bundle")


@pytest.mark.parametrize("case", sorted(UNSAFE_ENTRIES))
def test_links_and_escaping_paths_in_a_signed_site_part_are_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path, case: str
) -> None:
    bundle = _v2(hub, media)
    outside = tmp_path / "outside" / "written-by-the-bundle"
    evil = UNSAFE_ENTRIES[case](bundle.plan, outside)
    bundle.write_raw_site_part(hub, [*bundle.site_part_entries(), evil])
    refuse_import(spoke, media / "bundle", UnsafeArchiveError, RULES[case])
    assert not outside.parent.exists()
    assert not (spoke.path / "staged" / "blobs" / "sha256" / "evil").exists()


NOT_A_SITE_PART_ENTRY = "not metadata/…, index/<sha256>.json or layout.json"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        pytest.param("metadata/evil/1.root.json", "unexpected metadata entry", id="metadata"),
        pytest.param(f"blobs/sha256/{'0' * 64}", NOT_A_SITE_PART_ENTRY, id="blob"),
        pytest.param("index/x.json", NOT_A_SITE_PART_ENTRY, id="index-name"),
        pytest.param("layout.json.bak", NOT_A_SITE_PART_ENTRY, id="other"),
    ],
)
def test_an_entry_the_site_part_may_not_hold_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, name: str, match: str
) -> None:
    """Format 1's "metadata outside the two repositories" and "a file not listed" alike."""
    bundle = _v2(hub, media)
    bundle.write_raw_site_part(hub, [*bundle.site_part_entries(), regular(name, b"{}")])
    refuse_import(spoke, media / "bundle", UnsafeArchiveError, re.escape(match))


def test_a_duplicated_site_part_entry_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    bundle = _v2(hub, media)
    entries = bundle.site_part_entries()
    bundle.write_raw_site_part(hub, [*entries, entries[0]])
    refuse_import(spoke, media / "bundle", UnsafeArchiveError, "duplicate name")


def test_the_index_of_a_file_the_signed_metadata_does_not_list_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    """Format 1's unlisted file: a well-formed chunk index no Director target binds."""
    bundle = _v2(hub, media)
    extra = b"a file no signed target names"
    index = ChunkIndex(sha256_hex(extra), len(extra), CHUNK_SIZE, (sha256_hex(extra),))
    entry = regular(f"index/{sha256_hex(extra)}.json", index.to_bytes())
    bundle.write_raw_site_part(hub, [*bundle.site_part_entries(), entry])
    error = refuse_import(spoke, media / "bundle", UnsafeArchiveError, "not listed in the signed")
    assert sha256_hex(extra) in error.message
