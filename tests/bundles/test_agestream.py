"""airlock.bundles.agestream on its own: keys, sizes, round trips, random access, chunk runs.

Interoperability with the stock age binary is in test_agestream_interop.py; refusals of
damaged files in test_agestream_refusals.py.
"""

from __future__ import annotations

import io
import os
import threading

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream import (
    CIPHER_CHUNK,
    PLAIN_CHUNK,
    AgeReader,
    AgeWriter,
    decrypt_chunks,
    encrypt_chunks,
    encrypted_size,
    generate_identity,
    header_size,
    identity_text,
    parse_identity,
    parse_recipient,
    plain_capacity,
    recipient_of,
    recipient_text,
    start_file,
)
from airlock.bundles.errors import DecryptionError, UsageError

SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def encrypt(data: bytes, recipients: list[str], pieces: int = 1) -> bytes:
    out = io.BytesIO()
    with AgeWriter(out, recipients) as writer:
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
    assert writer.size == len(out.getvalue())
    return out.getvalue()


def test_the_spec_example_identity_gives_the_spec_example_recipient() -> None:
    identity = parse_identity(SPEC_IDENTITY)
    assert identity == bytes([0x42]) * 32
    assert recipient_of(identity) == SPEC_RECIPIENT
    assert parse_recipient(SPEC_RECIPIENT) == parse_recipient(recipient_of(identity))
    assert identity_text(identity) == SPEC_IDENTITY
    assert recipient_text(parse_recipient(SPEC_RECIPIENT)) == SPEC_RECIPIENT


@pytest.mark.parametrize(
    "text",
    [
        SPEC_RECIPIENT.upper(),  # valid Bech32, but the hrp must be lower-case "age"
        SPEC_RECIPIENT[:-1] + ("q" if SPEC_RECIPIENT[-1] != "q" else "p"),  # checksum
        SPEC_RECIPIENT[:10] + SPEC_RECIPIENT[10:].upper(),  # mixed case
        SPEC_IDENTITY,  # an identity is not a recipient
        "age1" + "b" * 58,  # 'b' is not in the Bech32 alphabet
        recipient_text(bytes(32))[:-6] + "",  # too short to hold a checksum's worth
        "",
    ],
)
def test_parse_recipient_refuses_what_is_not_an_x25519_recipient(text: str) -> None:
    with pytest.raises(UsageError):
        parse_recipient(text)


def test_parse_identity_reads_a_key_file_and_never_echoes_a_secret() -> None:
    first, second = generate_identity(), generate_identity()
    key_file = (
        "# created: 2026-12-07T10:00:00Z\n"
        f"# public key: {recipient_of(first)}\n"
        f"{identity_text(first)}\n\n"
        f"  {identity_text(second)}  \n"
    )
    assert parse_identity(key_file) == first
    damaged = identity_text(first)[:-1] + ("Q" if identity_text(first)[-1] != "Q" else "P")
    for text in (damaged, identity_text(first).lower(), SPEC_RECIPIENT):
        with pytest.raises(UsageError) as caught:
            parse_identity(f"{identity_text(second)}\n{text}")
        message = str(caught.value) + caught.value.hint
        assert identity_text(second)[15:] not in message
        assert text[15:35] not in message
    with pytest.raises(UsageError, match="no age identity"):
        parse_identity("# only a comment\n\n")


def test_sizes_are_exact_for_every_boundary() -> None:
    assert header_size(1) == 22 + 98 + 48 + 16
    assert header_size(3) - header_size(2) == 98
    with pytest.raises(UsageError):
        header_size(0)
    recipients = [recipient_of(generate_identity()) for _ in range(3)]
    for n in (0, 1, PLAIN_CHUNK - 1, PLAIN_CHUNK, PLAIN_CHUNK + 1, 3 * PLAIN_CHUNK):
        for k in (1, 3):
            data = os.urandom(n)
            blob = encrypt(data, recipients[:k])
            assert len(blob) == encrypted_size(n, k)
    assert encrypted_size(0, 1) == header_size(1) + 16
    assert encrypted_size(PLAIN_CHUNK, 1) == header_size(1) + CIPHER_CHUNK
    assert encrypted_size(PLAIN_CHUNK + 1, 1) == header_size(1) + CIPHER_CHUNK + 17


def test_plain_capacity_is_the_largest_plaintext_that_fits() -> None:
    for k in (1, 2):
        base = header_size(k)
        sizes = [base + 16, base + 17, base + CIPHER_CHUNK - 1, base + CIPHER_CHUNK]
        sizes += [base + CIPHER_CHUNK + d for d in range(0, 40)]
        sizes += [base + 7 * CIPHER_CHUNK + d for d in (-1, 0, 1, 15, 16, 17)]
        sizes += [4_700_000_000, 1 << 30]
        for size in sizes:
            fit = plain_capacity(size, k)
            assert encrypted_size(fit, k) <= size < encrypted_size(fit + 1, k), size
        for plain in (0, 1, PLAIN_CHUNK, 5 * PLAIN_CHUNK + 3):
            assert plain_capacity(encrypted_size(plain, k), k) == plain
    with pytest.raises(UsageError):
        plain_capacity(header_size(1) + 15, 1)


def test_round_trip_whatever_the_write_pieces() -> None:
    identity = generate_identity()
    data = os.urandom(5 * PLAIN_CHUNK + 1234)
    for pieces in (1, 2, 7, 80, 700):
        blob = encrypt(data, [recipient_of(identity)], pieces)
        reader = AgeReader(io.BytesIO(blob), [identity])
        assert reader.plaintext_size == len(data)
        assert reader.read() == data
        assert reader.read() == b""


def test_writes_of_odd_types_and_one_byte_at_a_time() -> None:
    identity = generate_identity()
    out = io.BytesIO()
    with AgeWriter(out, [parse_recipient(recipient_of(identity))]) as writer:
        writer.write(bytearray(b"ab"))
        writer.write(memoryview(b"cdef")[1:3])
        for byte in range(200):
            writer.write(bytes([byte]))
        writer.write(b"")
    assert writer.plain_size == 204
    expected = b"abde" + bytes(range(200))
    assert AgeReader(io.BytesIO(out.getvalue()), [identity]).read() == expected


def test_seek_chunk_then_read_equals_the_slice() -> None:
    identity = generate_identity()
    data = os.urandom(20 * PLAIN_CHUNK + 777)
    blob = encrypt(data, [recipient_of(identity)])
    reader = AgeReader(io.BytesIO(blob), [identity])
    assert reader.chunks == 21
    for index in (19, 0, 20, 3, 17):
        reader.seek_chunk(index)
        assert reader.read() == data[index * PLAIN_CHUNK :]
    reader.seek_chunk(5)
    buffer = bytearray(3 * PLAIN_CHUNK)
    assert reader.readinto(buffer) == len(buffer)
    assert buffer == data[5 * PLAIN_CHUNK : 8 * PLAIN_CHUNK]
    reader.seek(-10, os.SEEK_END)
    assert reader.read(100) == data[-10:]
    reader.seek(PLAIN_CHUNK * 2 + 5)
    assert reader.read(PLAIN_CHUNK) == data[PLAIN_CHUNK * 2 + 5 : PLAIN_CHUNK * 3]  # raw: short
    assert reader.tell() == PLAIN_CHUNK * 3
    with pytest.raises(ValueError):
        reader.seek_chunk(22)


def test_small_reads_through_a_buffered_reader_on_a_raw_fd(tmp_path) -> None:
    identity = generate_identity()
    data = os.urandom(3 * PLAIN_CHUNK)  # a full final chunk
    path = tmp_path / "f.age"
    path.write_bytes(encrypt(data, [recipient_of(identity)]))
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = io.BufferedReader(AgeReader(fd, [identity]), buffer_size=1000)
        got = bytearray()
        while part := reader.read(333):
            got += part
        assert got == data
    finally:
        os.close(fd)


def test_an_empty_file_round_trips() -> None:
    identity = generate_identity()
    blob = encrypt(b"", [recipient_of(identity)])
    reader = AgeReader(io.BytesIO(blob), [identity])
    assert (reader.plaintext_size, reader.chunks, reader.read()) == (0, 1, b"")


def test_two_threads_seal_halves_of_one_file_with_encrypt_chunks() -> None:
    identity = generate_identity()
    data = os.urandom(32 * PLAIN_CHUNK + 99)
    head, key = start_file([recipient_of(identity)])
    assert len(head) == header_size(1)
    out = bytearray(encrypted_size(len(data), 1) - len(head))
    halves = [(0, 16), (16, 33)]  # chunk ranges; the second holds the final chunk

    def seal(first: int, end: int) -> None:
        src = memoryview(data)[first * PLAIN_CHUNK : end * PLAIN_CHUNK]
        dst = memoryview(out)[first * CIPHER_CHUNK :]
        encrypt_chunks(ChaCha20Poly1305(key), first, src, dst, final=end == 33)

    threads = [threading.Thread(target=seal, args=span) for span in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = AgeReader(io.BytesIO(head + out), [identity])
    assert reader.read() == data
    plain = bytearray(len(data))
    n = decrypt_chunks(ChaCha20Poly1305(key), 0, out, plain, final=True)
    assert (n, plain) == (len(data), data)


def test_encrypt_chunks_keeps_the_stream_rules() -> None:
    aead = ChaCha20Poly1305(os.urandom(32))
    out = bytearray(2 * CIPHER_CHUNK)
    with pytest.raises(ValueError):
        encrypt_chunks(aead, 0, bytes(PLAIN_CHUNK + 1), out)  # not whole chunks
    with pytest.raises(ValueError):
        encrypt_chunks(aead, 3, b"", out, final=True)  # empty final chunk after data
    with pytest.raises(ValueError):
        encrypt_chunks(aead, 0, bytes(2 * PLAIN_CHUNK), bytearray(2 * CIPHER_CHUNK - 1))
    assert encrypt_chunks(aead, 0, b"", out, final=True) == 16
    assert encrypt_chunks(aead, 7, bytes(PLAIN_CHUNK), out, final=True) == CIPHER_CHUNK


def test_a_writer_left_by_an_exception_leaves_a_file_every_reader_refuses() -> None:
    identity = generate_identity()
    out = io.BytesIO()
    with pytest.raises(RuntimeError), AgeWriter(out, [recipient_of(identity)]) as writer:
        writer.write(os.urandom(3 * PLAIN_CHUNK))
        raise RuntimeError("the producer failed")
    assert not writer.closed
    with pytest.raises(DecryptionError, match="damaged or truncated"):
        AgeReader(io.BytesIO(out.getvalue()), [identity])


def test_the_writer_refuses_bad_recipients() -> None:
    with pytest.raises(UsageError):
        AgeWriter(io.BytesIO(), [])
    with pytest.raises(UsageError, match="low-order"):
        AgeWriter(io.BytesIO(), [bytes(32)])
    with pytest.raises(UsageError):
        AgeWriter(io.BytesIO(), ["age1notarecipient"])


BIP173_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
]
BIP173_INVALID = [
    " 1nwldj5",  # hrp character out of range
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty hrp
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "A1G7SGD8",  # checksum computed with an upper-case hrp
    "10a06t8",  # empty hrp
    "1qzzfhee",  # empty hrp
    "a12UEL5L",  # mixed case
]


def test_bech32_codec_follows_bip173() -> None:
    from airlock.bundles.agestream._bech32 import Bech32Error, decode, encode

    for text in BIP173_VALID:
        hrp, data = decode(text)
        assert encode(hrp, data) == text
    for text in BIP173_INVALID:
        with pytest.raises(Bech32Error):
            decode(text)
