"""What AgeReader refuses: each file here is wrong in exactly one way.

Damaged files are made by editing real ones, or by tests/helpers/agecraft.py (an
independent writer built from the spec's primitives) where the damage must carry a
correct MAC or correct tags. Every refusal is a DecryptionError; none returns
plaintext that did not authenticate, and no message carries key material.
"""

from __future__ import annotations

import io
import os

import pytest

from airlock.bundles.agestream import (
    CIPHER_CHUNK,
    PLAIN_CHUNK,
    AgeReader,
    AgeWriter,
    generate_identity,
    identity_text,
    parse_recipient,
    recipient_of,
)
from airlock.bundles.errors import DecryptionError, UsageError
from tests.helpers.agecraft import Craft, b64, stanza

IDENTITY = generate_identity()
RECIPIENT = recipient_of(IDENTITY)
DATA = os.urandom(4 * PLAIN_CHUNK + 500)  # 5 chunks, the final one short


def encrypt(data: bytes = DATA) -> bytes:
    out = io.BytesIO()
    with AgeWriter(out, [RECIPIENT]) as writer:
        writer.write(data)
    return out.getvalue()


BLOB = encrypt()
START = BLOB.index(b"\n---") + 1 + 48 + 16  # the first sealed chunk


def refuse(blob: bytes, match: str, identities: list[bytes] | None = None) -> DecryptionError:
    """Opens and reads ``blob``; asserts it is refused with ``match`` and no secret leaks."""
    with pytest.raises(DecryptionError, match=match) as caught:
        AgeReader(io.BytesIO(blob), identities or [IDENTITY]).read()
    text = caught.value.message + caught.value.hint
    assert identity_text(IDENTITY)[15:] not in text and caught.value.hint
    return caught.value


def offset_of(chunk: int) -> str:
    return f"at byte offset {START + chunk * CIPHER_CHUNK}$"


def test_wrong_identity() -> None:
    refuse(BLOB, "^not encrypted to this identity$", [generate_identity(), generate_identity()])


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"age-encryption.org/v1\n", b"age-encryption.org/v2\n", "version other than v1"),
        (b"age-encryption.org/v1\n", b"AGE-encryption.org/v1\n", "not an age encrypted file"),
        (b"-> X25519 ", b"->  X25519 ", "neither a stanza nor"),
        (b"\n---", b"\n--- x", "malformed MAC line"),
    ],
)
def test_a_tampered_header_is_refused(old: bytes, new: bytes, match: str) -> None:
    refuse(BLOB.replace(old, new, 1), match)


def test_a_tampered_mac_or_an_unmacd_extra_stanza_fails_header_authentication() -> None:
    at = BLOB.index(b"\n--- ") + 5
    flipped = b"A" if BLOB[at : at + 1] != b"A" else b"B"
    refuse(BLOB[:at] + flipped + BLOB[at + 1 :], "header authentication failed")
    grease = stanza(["example.com/grease", "x"], os.urandom(40))
    at = BLOB.index(b"---")
    refuse(BLOB[:at] + grease + BLOB[at:], "header authentication failed")


def test_a_tampered_stanza_body_or_share_opens_for_no_identity() -> None:
    lines = BLOB.split(b"\n")
    for index in (1, 2):  # the share argument line, the body line
        line = bytearray(lines[index])
        line[-5] = ord("A") if line[-5] != ord("A") else ord("B")
        refuse(b"\n".join([*lines[:index], bytes(line), *lines[index + 1 :]]), "not encrypted")


def test_foreign_stanzas_are_skipped_and_every_x25519_stanza_tried() -> None:
    craft = Craft()
    others = [parse_recipient(recipient_of(generate_identity())) for _ in range(2)]
    header = craft.header(
        stanza(["example.com/grease", "a", "b"], os.urandom(96)),  # 96 bytes: empty last line
        craft.x25519(others[0]),
        stanza(["X25519-like"], b""),
        craft.x25519(parse_recipient(RECIPIENT)),
        craft.x25519(others[1]),
    )
    blob = header + craft.payload(DATA)
    assert AgeReader(io.BytesIO(blob), [generate_identity(), IDENTITY]).read() == DATA


@pytest.mark.parametrize(
    ("bad_stanza", "match"),
    [
        (stanza(["scrypt", b64(os.urandom(16)), "18"], os.urandom(32)), "scrypt stanza alongside"),
        (stanza(["X25519", b64(os.urandom(32)), "extra"], os.urandom(32)), "exactly one argument"),
        (stanza(["X25519", b64(os.urandom(31))], os.urandom(32)), "not 32 bytes"),
        (stanza(["X25519", b64(os.urandom(32))], os.urandom(33)), "body that is not 32 bytes"),
        (stanza(["X25519", b64(bytes(32))], os.urandom(32)), "all-zero shared secret"),
        (b"-> X25519 " + b64(os.urandom(32)).encode() + b"=\n" + b"A" * 43 + b"\n", "base64"),
        (b"-> grease\n" + b"A" * 65 + b"\n", "longer than 64 columns"),
        (b"-> grease\n" + b"A" * 64 + b"\n", "base64"),  # a full line with no final line
        (b"-> grease\nAB\n", "non-canonical"),  # 'B' leaves non-zero padding bits
        (b"-> gr\xc3\xa9ase\nAA\n", "neither a stanza nor"),
    ],
    ids=[
        "scrypt-alongside",
        "extra-argument",
        "short-share",
        "long-body",
        "zero-secret",
        "padded-base64",
        "long-line",
        "no-final-line",
        "non-canonical",
        "non-ascii",
    ],
)
def test_a_malformed_stanza_aborts_even_with_a_valid_stanza_present(
    bad_stanza: bytes, match: str
) -> None:
    craft = Craft()
    header = craft.header(bad_stanza, craft.x25519(parse_recipient(RECIPIENT)))
    refuse(header + craft.payload(b"x"), "damaged age header: .*" + match)


def test_a_header_with_no_stanza_or_cut_short_is_refused() -> None:
    craft = Craft()
    refuse(craft.header() + craft.payload(b"x"), "no recipient stanza")
    refuse(BLOB[: BLOB.index(b"---") + 10], "ends inside the header")
    refuse(b"", "ends inside the header")


def test_a_flipped_payload_byte_fails_at_its_chunk_after_the_chunks_before_it() -> None:
    blob = bytearray(BLOB)
    blob[START + 2 * CIPHER_CHUNK + 1000] ^= 0x01
    reader = AgeReader(io.BytesIO(bytes(blob)), [IDENTITY])
    buffer = bytearray(PLAIN_CHUNK)
    for chunk in range(2):
        assert reader.readinto(buffer) == PLAIN_CHUNK
        assert buffer == DATA[chunk * PLAIN_CHUNK : (chunk + 1) * PLAIN_CHUNK]
    with pytest.raises(DecryptionError, match=offset_of(2)):
        reader.readinto(buffer)
    assert buffer == bytes(PLAIN_CHUNK)  # nothing unauthenticated left in the caller's buffer
    big = bytearray(4 * PLAIN_CHUNK)
    reader.seek_chunk(0)
    with pytest.raises(DecryptionError, match=offset_of(2)):
        reader.readinto(big)  # the direct path, 4 chunks in one run
    assert big[2 * PLAIN_CHUNK : 3 * PLAIN_CHUNK] == bytes(PLAIN_CHUNK)


@pytest.mark.parametrize(
    "cut",
    [
        START + 4 * CIPHER_CHUNK,  # at a chunk boundary: the final chunk is gone
        START + 2 * CIPHER_CHUNK,
        START + 4 * CIPHER_CHUNK + 100,  # mid-chunk
        START + 4 * CIPHER_CHUNK + 10,  # shorter than a tag
        START + 1,
        START,  # no chunk at all
        START - 5,  # inside the payload nonce
    ],
)
def test_truncation_is_refused_at_open(cut: int) -> None:
    refuse(BLOB[:cut], "damaged or truncated")


@pytest.mark.parametrize("extra", [1, 15, 16, 17, CIPHER_CHUNK - 500, CIPHER_CHUNK])
def test_appended_bytes_are_refused_at_open(extra: int) -> None:
    refuse(BLOB + os.urandom(extra), "damaged or truncated")


def test_appended_bytes_after_a_full_final_chunk_are_refused() -> None:
    blob = encrypt(DATA[: 2 * PLAIN_CHUNK])
    refuse(blob + b"\0", "damaged or truncated")
    refuse(blob + blob[-CIPHER_CHUNK:], "damaged or truncated")


def test_swapped_or_dropped_chunks_are_refused() -> None:
    chunks = [BLOB[START + i * CIPHER_CHUNK : START + (i + 1) * CIPHER_CHUNK] for i in range(5)]
    head = BLOB[:START]
    refuse(head + b"".join([chunks[1], chunks[0], *chunks[2:]]), offset_of(0))
    refuse(head + b"".join([*chunks[:2], *chunks[3:]]), offset_of(3))  # the final check
    refuse(head + b"".join([*chunks[:3], chunks[4], chunks[3]]), "damaged or truncated")


def test_an_empty_final_chunk_after_data_is_refused() -> None:
    craft = Craft()
    header = craft.header(craft.x25519(parse_recipient(RECIPIENT)))
    data = os.urandom(PLAIN_CHUNK)
    blob = header + craft.nonce + craft.seal(0, data, False) + craft.seal(1, b"", True)
    refuse(blob, "empty final chunk after data")
    good = header + craft.nonce + craft.seal(0, data, True)  # the same file, written right
    assert AgeReader(io.BytesIO(good), [IDENTITY]).read() == data


def test_final_flags_must_be_on_the_last_chunk_only() -> None:
    craft = Craft()
    header = craft.header(craft.x25519(parse_recipient(RECIPIENT))) + craft.nonce
    a, b = os.urandom(PLAIN_CHUNK), os.urandom(10)
    start = len(header)
    refuse(header + craft.seal(0, a, True) + craft.seal(1, b, True), f"offset {start}$")
    refuse(header + craft.seal(0, a, False) + craft.seal(1, b, False), "damaged or truncated")
    refuse(header + craft.seal(0, a, False), "damaged or truncated")  # no final chunk at all
    refuse(header + craft.seal(1, a, False) + craft.seal(2, b, True), "damaged or truncated")
    blob = header + craft.seal(1, a, False) + craft.seal(1, b, True)  # counter starts at 1
    refuse(blob, f"offset {start}$")


def test_a_name_prefixes_every_refusal() -> None:
    with pytest.raises(DecryptionError, match=r"^volume 3 of 7 \(x.age\): damaged or trunc"):
        AgeReader(io.BytesIO(BLOB[:-1]), [IDENTITY], name="volume 3 of 7 (x.age)")


def test_a_malformed_x25519_stanza_aborts_even_after_one_that_opens() -> None:
    craft = Craft()
    bad = stanza(["X25519", b64(os.urandom(32)), "extra"], os.urandom(32))
    header = craft.header(craft.x25519(parse_recipient(RECIPIENT)), bad)
    refuse(header + craft.payload(b"x"), "exactly one argument")


def test_a_header_longer_than_the_bound_is_refused_without_reading_on() -> None:
    refuse(b"age-encryption.org/v1\n" + b"-> a\n" + b"A" * 64 * 20000, "longer than")


def test_a_pipe_is_refused_and_an_fd_keeps_its_position(tmp_path) -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(UsageError, match="seekable"):
            AgeReader(read_end, [IDENTITY])
    finally:
        os.close(read_end)
        os.close(write_end)
    path = tmp_path / "f.age"
    path.write_bytes(BLOB)
    with open(path, "rb") as handle:
        handle.raw.seek(7)
        reader = AgeReader(handle.raw.fileno(), [IDENTITY])
        assert reader.read() == DATA
        assert handle.raw.tell() == 7
        reader.close()
        with pytest.raises(ValueError):
            reader.read()
