"""Attacks on the plaintext envelope: refused before the site passphrase is even asked for.

The envelope is the only plaintext of a bundle and the first thing checked:
an edit without the hub's envelope key, a signature by any other key, or a
bundle for another site must be refused without decrypting anything. The
spoke's secrets handler records every request, so "before decryption" is
checked, not assumed. Every attack runs against both bundle formats
(``bundle_format``: one ``payload.age``, or ``site.age`` and volumes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.bundlecraft import edit_envelope, forge_bundle
from helpers.spokeenv import OTHER_SITE_ID, SITE_ID, RecordingSecrets, refuse_import
from securesystemslib.signer import CryptoSigner, Signer

from airlock.bundles.bundle import ENVELOPE_FILE
from airlock.bundles.errors import MediaError, SignatureError, WrongSiteError
from airlock.hub import repos as signing
from airlock.hub.context import HubContext, online_signer
from airlock.hub.export import MediaOptions, export, plan_export
from airlock.spoke.site import SpokeHome


def _set_signed(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["signed"][field] = value

    return edit


def _edit_signature(change: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["signatures"][0]["sig"] = change(doc["signatures"][0]["sig"])

    return edit


def _clear_encryption(doc: dict[str, Any]) -> None:
    """``encrypted: false``, and in format 2 the file names an unencrypted bundle has."""
    signed = doc["signed"]
    signed["encrypted"] = False
    if "site_part" in signed:  # format 2: the schema ties the names to the flag
        signed["site_part"]["name"] = "site.tar"
        for volume in signed["volumes"]:
            volume["name"] = re.sub(r"\.age$", ".tar", volume["name"])


def _flip_hex_digit(sig: str) -> str:
    return sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_set_signed("sequence", 1000), id="sequence-raised"),
        pytest.param(_set_signed("expires", "2099-01-01T00:00:00Z"), id="expiry-extended"),
        pytest.param(_clear_encryption, id="encryption-flag-cleared"),
        pytest.param(_edit_signature(_flip_hex_digit), id="signature-one-hex-digit"),
        pytest.param(_edit_signature(lambda sig: sig[:-1]), id="signature-truncated"),
        pytest.param(_edit_signature(lambda sig: "zz" + sig[2:]), id="signature-not-hex"),
        pytest.param(lambda doc: doc.update(signatures=[]), id="signatures-removed"),
    ],
)
def test_an_envelope_edited_without_the_envelope_key_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
    edit: Callable[[dict[str, Any]], None],
) -> None:
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    edit_envelope(media / "bundle", edit)
    error = refuse_import(spoke, media / "bundle", SignatureError, "not signed by a trusted")
    assert "(0 of 1)" in error.message
    assert secrets.asked == [], "the site passphrase was asked for before the envelope verified"


def test_another_sites_bundle_relabelled_for_this_site_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    export(hub, OTHER_SITE_ID, media / "bundle", media=bundle_format)
    edit_envelope(media / "bundle", _set_signed("site_id", SITE_ID))
    refuse_import(spoke, media / "bundle", SignatureError, "not signed by a trusted")
    assert secrets.asked == []


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param(lambda hub: CryptoSigner.generate_ed25519(), id="attacker-key"),
        pytest.param(
            lambda hub: online_signer(hub, signing.DIRECTOR_TARGETS), id="hub-key-of-another-role"
        ),
    ],
)
def test_a_bundle_signed_with_another_key_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
    signer: Callable[[HubContext], Signer],
) -> None:
    """The attacker re-signs a well-formed bundle; only the anchored envelope key counts."""
    plan = plan_export(hub, SITE_ID)
    forge_bundle(hub, plan, media / "forged", media=bundle_format, signers=[signer(hub)])
    refuse_import(spoke, media / "forged", SignatureError, r"\(0 of 1\)")
    assert secrets.asked == []


def test_a_bundle_exported_for_another_site_is_refused(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    export(hub, OTHER_SITE_ID, media / "bundle-for-plant-9", media=bundle_format)
    error = refuse_import(spoke, media / "bundle-for-plant-9", WrongSiteError, "for site 'plant-9'")
    assert SITE_ID in error.message and "exported for this site" in error.hint
    assert secrets.asked == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"PK\x03\x04 not json", id="not-json"),
        pytest.param(json.dumps({"signed": [], "signatures": []}).encode(), id="signed-not-object"),
        pytest.param(b"[" * 100_000, id="deeply-nested"),
    ],
)
def test_a_malformed_envelope_is_refused_as_bad_media(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
    content: bytes,
) -> None:
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    (media / "bundle" / ENVELOPE_FILE).write_bytes(content)
    refuse_import(spoke, media / "bundle", MediaError, "not a valid Airlock envelope")
    assert secrets.asked == []


def test_an_envelope_with_a_number_json_cannot_canonicalise_is_refused_as_bad_media(
    hub: HubContext,
    spoke: SpokeHome,
    secrets: RecordingSecrets,
    media: Path,
    bundle_format: MediaOptions,
) -> None:
    """A float in the signed part (canonical JSON has none) must not crash the import."""
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    edit_envelope(media / "bundle", _set_signed("sequence", 2.5))
    refuse_import(spoke, media / "bundle", MediaError, "not a valid Airlock envelope")
    assert secrets.asked == []


def test_a_bundle_without_an_envelope_is_refused_as_bad_media(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    (media / "bundle" / ENVELOPE_FILE).unlink()
    refuse_import(spoke, media / "bundle", MediaError, "no envelope.json")
