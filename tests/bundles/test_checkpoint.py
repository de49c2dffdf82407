"""C2SP signed notes and tlog-checkpoints: Go sumdb/note known answers, parsing, refusals."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.signer import CryptoSigner

from airlock.bundles.audit import (
    Checkpoint,
    checkpoint_body,
    note_key_id,
    open_note,
    parse_checkpoint_body,
    read_checkpoint,
    sign_checkpoint,
    sign_note,
    verifier_key,
    verify_checkpoint,
)
from airlock.bundles.errors import MediaError, SignatureError

# golang.org/x/mod/sumdb/note's example key and note (also in the C2SP ecosystem's tests).
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def go_signer() -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def test_signing_matches_go_sumdb_note_byte_for_byte(go_signer: CryptoSigner) -> None:
    assert note_key_id("PeterNeumann", go_signer.public_key).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", go_signer.public_key) == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", go_signer) == GO_NOTE
    assert open_note(GO_NOTE, {"PeterNeumann": go_signer.public_key}) == GO_TEXT


def test_checkpoint_layout_and_independent_verification(signer: CryptoSigner) -> None:
    made = sign_checkpoint("airlock/hub/h1", 42, ROOT, signer)
    body, _, signature_line = made.note.partition("\n\n")
    assert body + "\n" == f"airlock/hub/h1\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert signature_line.startswith("\u2014 airlock/hub/h1 ") and signature_line.endswith("\n")
    # Verify with `cryptography` alone, following the C2SP text rather than our code.
    raw_key = bytes.fromhex(signer.public_key.keyval["public"])
    blob = base64.b64decode(signature_line.rstrip("\n").split(" ")[2])
    key_id = hashlib.sha256(b"airlock/hub/h1\n\x01" + raw_key).digest()[:4]
    assert blob[:4] == key_id
    Ed25519PublicKey.from_public_bytes(raw_key).verify(blob[4:], (body + "\n").encode())
    parsed = verify_checkpoint(made.note, {"airlock/hub/h1": signer.public_key})
    assert (parsed.origin, parsed.size, parsed.root) == ("airlock/hub/h1", 42, ROOT)


def test_a_bare_key_is_accepted_under_the_name_in_the_note(signer: CryptoSigner) -> None:
    made = sign_checkpoint("airlock/spoke/plant-7", 3, ROOT, signer)
    assert verify_checkpoint(made.note, {"": signer.public_key}).size == 3


@pytest.mark.parametrize(
    "change",
    [
        lambda n: n.replace("\n42\n", "\n43\n"),
        lambda n: n.replace("airlock/hub/h1\n", "airlock/hub/h2\n", 1),
        lambda n: n.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()),
    ],
    ids=["size", "origin", "root"],
)
def test_an_altered_body_fails_the_signature(signer: CryptoSigner, change) -> None:  # type: ignore[no-untyped-def]
    note = sign_checkpoint("airlock/hub/h1", 42, ROOT, signer).note
    with pytest.raises(SignatureError):
        verify_checkpoint(change(note), {"": signer.public_key})


def test_a_note_from_another_key_is_refused(signer: CryptoSigner) -> None:
    other = CryptoSigner.generate_ed25519()
    note = sign_checkpoint("airlock/hub/h1", 1, ROOT, other).note
    with pytest.raises(SignatureError, match="not signed by the expected key"):
        verify_checkpoint(note, {"airlock/hub/h1": signer.public_key})


def test_a_forged_signature_under_the_right_key_id_is_refused(signer: CryptoSigner) -> None:
    note = sign_checkpoint("airlock/hub/h1", 1, ROOT, signer).note
    body, _, line = note.partition("\n\n")
    blob = base64.b64decode(line.split(" ")[2])
    forged = blob[:4] + bytes(64)
    bad = f"{body}\n\n\u2014 airlock/hub/h1 {base64.b64encode(forged).decode()}\n"
    with pytest.raises(SignatureError, match="does not verify"):
        verify_checkpoint(bad, {"airlock/hub/h1": signer.public_key})


def test_unknown_signatures_are_ignored(signer: CryptoSigner) -> None:
    note = sign_checkpoint("airlock/hub/h1", 1, ROOT, signer).note
    witness = CryptoSigner.generate_ed25519()
    cosigned = (
        note + sign_note(checkpoint_body("airlock/hub/h1", 1, ROOT), "w", witness).split("\n\n")[1]
    )
    assert verify_checkpoint(cosigned, {"airlock/hub/h1": signer.public_key}).size == 1


@pytest.mark.parametrize(
    "text",
    [
        "origin\n12\n",
        "origin\n012\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n12\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "origin\n12\nnot base64!\n",
        "origin\n12\n" + base64.b64encode(ROOT).decode(),
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with pytest.raises(MediaError):
        parse_checkpoint_body(text)


def test_extension_lines_are_allowed() -> None:
    body = checkpoint_body("o", 0, ROOT) + "extension\n"
    assert parse_checkpoint_body(body) == Checkpoint("o", 0, ROOT)


@pytest.mark.parametrize(
    "note",
    [
        "no signatures\n",
        "text\n\n- name c2lnbmF0dXJl\n",
        "text\n\n\u2014 name !!!\n",
        "text\n\n\u2014 name AAAA\n",
        "text\r\n\n\u2014 name AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(MediaError):
        read_checkpoint(note)


def test_names_with_spaces_or_plus_cannot_sign(signer: CryptoSigner) -> None:
    for name in ("", "a b", "a+b"):
        with pytest.raises(ValueError):
            sign_note("text\n", name, signer)
