"""Import receipts (``airlock-import-receipt/1``): signed by the site key, verified strictly."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from securesystemslib.signer import CryptoSigner

from airlock.bundles.audit import (
    RECEIPT_FORMAT,
    ImportReceipt,
    ReceiptFile,
    receipt_bytes,
    sign_receipt,
    verify_receipt,
)
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import MediaError, SignatureError, WrongSiteError

WHEN = dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC)


def receipt(**changes: object) -> ImportReceipt:
    fields: dict[str, object] = {
        "site_id": "plant-7",
        "bundle_id": "c53201e4-ef7b-45f0-bdfb-afe70cfeaaf3",
        "sequence": 4,
        "kind": "full",
        "format_version": 2,
        "envelope_sha256": "ab" * 32,
        "airlock_version": "0.1.0",
        "imported_at": WHEN,
        "volumes": {"read": ("a-data-001-of-002.age",), "rebuilt": (), "resumed": ()},
        "files": (ReceiptFile("cd" * 32, 6_000_000, "ef" * 32, 6),),
        "envelope_keyids": ("01" * 32,),
        "director_root_version": 1,
        "image_root_version": 2,
        "staged": ("big@1",),
    }
    fields.update(changes)
    return ImportReceipt(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def test_a_signed_receipt_verifies_and_says_what_it_attests(signer: CryptoSigner) -> None:
    data = receipt_bytes(sign_receipt(receipt(), signer))
    found = verify_receipt(data, signer.public_key, "plant-7")
    assert found == receipt()
    assert json.loads(data)["signed"]["format"] == RECEIPT_FORMAT
    summary = found.summary()
    assert (summary["files"], summary["bytes"], summary["chunks"]) == (1, 6_000_000, 6)
    assert summary["volumes"] == {"read": 1, "rebuilt": 0, "resumed": 0}


def test_a_format_1_receipt_lists_whole_files(signer: CryptoSigner) -> None:
    whole = receipt(format_version=1, files=(ReceiptFile("cd" * 32, 10),))
    found = verify_receipt(receipt_bytes(sign_receipt(whole, signer)), signer.public_key)
    assert found.files[0].index_sha256 is None and found.files[0].chunks is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("sequence",), 5),
        (("volumes", "rebuilt"), ["a-data-002-of-002.age"]),
        (("files", 0, "chunks"), 5),
        (("keys", "image_root_version"), 1),
        (("staged",), []),
    ],
)
def test_any_altered_field_is_refused(
    signer: CryptoSigner, path: tuple[str | int, ...], value: object
) -> None:
    doc = sign_receipt(receipt(), signer)
    target = doc["signed"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(SignatureError, match="not signed by the site key"):
        verify_receipt(receipt_bytes(doc), signer.public_key)


def test_another_key_or_no_signature_is_refused(signer: CryptoSigner) -> None:
    other = CryptoSigner.generate_ed25519()
    data = receipt_bytes(sign_receipt(receipt(), other))
    with pytest.raises(SignatureError):
        verify_receipt(data, signer.public_key)
    doc = json.loads(data)
    doc["signatures"] = []
    with pytest.raises(SignatureError):
        verify_receipt(json.dumps(doc).encode(), signer.public_key)


def test_a_receipt_of_another_site_is_refused(signer: CryptoSigner) -> None:
    data = receipt_bytes(sign_receipt(receipt(), signer))
    with pytest.raises(WrongSiteError, match="names site plant-7"):
        verify_receipt(data, signer.public_key, "plant-9")


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.update(extra=1),
        lambda s: s.update(format="airlock-import-receipt/2"),
        lambda s: s.update(sequence="4"),
        lambda s: s["files"][0].update(index_sha256=None),
        lambda s: s.update(imported_at="2026-12-01 08:30"),
    ],
)
def test_a_signed_but_malformed_receipt_is_refused(signer: CryptoSigner, edit: object) -> None:
    """Strict even under a valid signature: a key holder cannot sign a looser document in."""
    signed = receipt().to_dict()
    edit(signed)  # type: ignore[operator]
    sig = signer.sign(canonical_bytes(signed)).to_dict()
    data = json.dumps({"signed": signed, "signatures": [sig]}).encode()
    with pytest.raises(MediaError, match="not a valid import receipt"):
        verify_receipt(data, signer.public_key)


@pytest.mark.parametrize(
    "data", [b"", b"[]", b'{"signed": {}}', b"\xff", b'{"signed":1,"signatures":[{}]}']
)
def test_not_a_receipt(signer: CryptoSigner, data: bytes) -> None:
    with pytest.raises(MediaError):
        verify_receipt(data, signer.public_key)
