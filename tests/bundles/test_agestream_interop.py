"""agestream and the stock age tools (age, age-keygen), both ways.

Files written by AgeWriter decrypt with ``age -d -i``; files written by ``age -r``
decrypt with AgeReader, for the sizes around chunk boundaries, several recipients,
key files from ``age-keygen``, and a file sealed by two threads with encrypt_chunks.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream import (
    CIPHER_CHUNK,
    PLAIN_CHUNK,
    AgeReader,
    AgeWriter,
    encrypt_chunks,
    encrypted_size,
    identity_text,
    parse_identity,
    parse_recipient,
    recipient_of,
    start_file,
)
from airlock.bundles.errors import DecryptionError
from tests.helpers.agecraft import Craft, stanza

SIZES = [0, 1, PLAIN_CHUNK - 1, PLAIN_CHUNK, PLAIN_CHUNK + 1, 3 * PLAIN_CHUNK]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes, str]]:
    """Three identities made by age-keygen: (key file, identity, recipient)."""
    out = []
    for i in range(3):
        path = tmp_path_factory.mktemp("agestream-keys") / f"key{i}.txt"
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
        text = path.read_text()
        public = subprocess.run(
            ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()
        out.append((path, parse_identity(text), public))
    return out


def age_decrypt(blob: bytes, key_file: Path) -> bytes:
    done = subprocess.run(["age", "-d", "-i", str(key_file)], input=blob, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ours(data: bytes, recipients: list[str]) -> bytes:
    out = io.BytesIO()
    with AgeWriter(out, recipients) as writer:
        writer.write(data)
    return out.getvalue()


def test_age_keygen_identities_parse_to_their_recipients(keys) -> None:
    for path, identity, public in keys:
        assert recipient_of(identity) == public
        assert identity_text(identity) in path.read_text()
        assert len(parse_recipient(public)) == 32


@pytest.mark.parametrize("size", SIZES)
def test_age_decrypts_ours(keys, size: int) -> None:
    data = os.urandom(size)
    blob = ours(data, [keys[0][2]])
    assert len(blob) == encrypted_size(size, 1)
    assert age_decrypt(blob, keys[0][0]) == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_ages(keys, size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    plain, enc = tmp_path / "plain", tmp_path / "plain.age"
    plain.write_bytes(data)
    subprocess.run(["age", "-r", keys[0][2], "-o", str(enc), str(plain)], check=True)
    assert enc.stat().st_size == encrypted_size(size, 1)  # age writes what we predict
    fd = os.open(enc, os.O_RDONLY)
    try:
        reader = AgeReader(fd, [keys[0][1]])
        assert reader.plaintext_size == size
        assert reader.read() == data
    finally:
        os.close(fd)


def test_several_recipients_both_ways(keys) -> None:
    data = os.urandom(2 * PLAIN_CHUNK + 3)
    blob = ours(data, [public for _, _, public in keys])
    assert len(blob) == encrypted_size(len(data), 3)
    for path, _, _ in keys:
        assert age_decrypt(blob, path) == data
    args = [a for _, _, public in keys for a in ("-r", public)]
    theirs = subprocess.run(["age", *args], input=data, capture_output=True, check=True).stdout
    assert len(theirs) == encrypted_size(len(data), 3)
    for _, identity, _ in keys:
        assert AgeReader(io.BytesIO(theirs), [identity]).read() == data


def test_a_few_mib_both_ways(keys) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)
    path, identity, public = keys[1]
    assert age_decrypt(ours(data, [public]), path) == data
    theirs = subprocess.run(["age", "-r", public], input=data, capture_output=True, check=True)
    reader = AgeReader(io.BytesIO(theirs.stdout), [identity])
    reader.seek_chunk(40)
    assert reader.read() == data[40 * PLAIN_CHUNK :]


def test_a_file_sealed_by_two_threads_decrypts_with_age(keys) -> None:
    data = os.urandom(40 * PLAIN_CHUNK)  # a full final chunk
    head, key = start_file([keys[2][2]])
    body = bytearray(len(data) + 40 * 16)
    spans = [(0, 16), (16, 32), (32, 40)]

    def seal(first: int, end: int) -> None:
        src = memoryview(data)[first * PLAIN_CHUNK : end * PLAIN_CHUNK]
        dst = memoryview(body)[first * CIPHER_CHUNK :]
        encrypt_chunks(ChaCha20Poly1305(key), first, src, dst, final=end == 40)

    threads = [threading.Thread(target=seal, args=span) for span in spans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert age_decrypt(head + body, keys[2][0]) == data


def test_age_agrees_on_foreign_stanzas_and_on_an_empty_final_chunk(keys) -> None:
    path, identity, public = keys[0]
    craft = Craft()
    header = craft.header(
        stanza(["example.com/grease", "z"], os.urandom(48)), craft.x25519(parse_recipient(public))
    )
    data = os.urandom(PLAIN_CHUNK)
    good = header + craft.payload(data)
    assert age_decrypt(good, path) == data
    assert AgeReader(io.BytesIO(good), [identity]).read() == data
    bad = header + craft.nonce + craft.seal(0, data, False) + craft.seal(1, b"", True)
    assert subprocess.run(["age", "-d", "-i", str(path)], input=bad, capture_output=True).returncode
    with pytest.raises(DecryptionError):
        AgeReader(io.BytesIO(bad), [identity])
