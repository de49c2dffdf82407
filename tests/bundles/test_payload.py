"""Payload layer: round trips, interoperability with stock age/tar, check_parts, decryption.

Real pyrage and the real stock ``age`` binary; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Any

import pyrage
import pytest
from helpers.payloadenv import Recorder, allowed_of, store_blob
from helpers.smalldisk import small_tmpfs
from pyrage import x25519

from airlock.bundles.bundle import (
    BlobSource,
    UnpackedPayload,
    check_parts,
    hash_file,
    open_parts,
    read_payload,
    write_payload,
)
from airlock.bundles.errors import (
    DecryptionError,
    IntegrityError,
    MediaError,
    NotFoundError,
    StorageError,
    UsageError,
)
from airlock.bundles.models import PayloadPart

METADATA = [
    ("metadata/image/1.root.json", b'{"signed": "image root"}'),
    ("metadata/image/timestamp.json", b'{"signed": "image timestamp"}'),
    ("metadata/director/1.root.json", b'{"signed": "director root"}'),
    ("metadata/in-toto/root.layout", b"layout"),
]


@pytest.fixture(scope="module")
def identity() -> Any:
    return x25519.Identity.generate()


@pytest.fixture(scope="module")
def recipient(identity: Any) -> str:
    return str(identity.to_public())


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, identity: Any) -> Path:
    path = tmp_path_factory.mktemp("keys") / "site.key"
    path.write_text(f"{identity}\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> list[BlobSource]:
    """An empty blob, a small one, and one of several MiB (several buffers, age chunks)."""
    store = tmp_path_factory.mktemp("store")
    return [store_blob(store, data) for data in (b"", b"tiny model", os.urandom(3 * (1 << 20) + 5))]


def sh(script: str) -> str:
    """Runs a pipeline of stock tools (fails if any stage fails); returns its stdout."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], check=True, capture_output=True, text=True
    ).stdout


def fresh(path: Path) -> Path:
    path.mkdir()
    return path


def assert_unpacked(result: UnpackedPayload, blobs: list[BlobSource], dest: Path) -> None:
    assert list(result.metadata.items()) == METADATA
    assert set(result.blobs) == {b.sha256 for b in blobs}
    for blob in blobs:
        path = result.blobs[blob.sha256]
        assert path == dest / "blobs" / "sha256" / blob.sha256
        assert path.read_bytes() == blob.path.read_bytes()
    leftovers = [p.name for p in (dest / "blobs" / "sha256").iterdir() if p.suffix == ".partial"]
    assert leftovers == []


# --- round trips ---------------------------------------------------------------------------


def test_encrypted_round_trip(
    tmp_path: Path, blobs: list[BlobSource], identity: Any, recipient: str
) -> None:
    parts = write_payload(tmp_path / "bundle", METADATA, blobs, [recipient])
    assert [p.name for p in parts] == ["payload.age"]
    payload = tmp_path / "bundle" / "payload.age"
    assert (parts[0].size, parts[0].sha256) == hash_file(payload)
    assert payload.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert sorted(os.listdir(tmp_path / "bundle")) == ["payload.age"]  # no temp file left

    on_metadata = Recorder(allowed_of(blobs))
    dest = fresh(tmp_path / "dest")
    paths = check_parts(tmp_path / "bundle", parts)
    result = read_payload(paths, [identity], dest, on_metadata)

    assert_unpacked(result, blobs, dest)
    assert on_metadata.calls == [dict(METADATA)]  # exactly once, with all metadata


def test_plaintext_round_trip(tmp_path: Path, blobs: list[BlobSource]) -> None:
    parts = write_payload(tmp_path / "bundle", METADATA, blobs, None)
    assert [p.name for p in parts] == ["payload.tar"]
    payload = tmp_path / "bundle" / "payload.tar"
    assert (parts[0].size, parts[0].sha256) == hash_file(payload)
    with tarfile.open(payload) as tar:  # a plain, standard tar
        assert tar.getnames() == [n for n, _ in METADATA] + [
            f"blobs/sha256/{b.sha256}" for b in blobs
        ]

    dest = fresh(tmp_path / "dest")
    result = read_payload(open_parts([payload]), None, dest, Recorder(allowed_of(blobs)))
    assert_unpacked(result, blobs, dest)


def test_split_parts_are_read_in_order(
    tmp_path: Path, blobs: list[BlobSource], identity: Any, recipient: str
) -> None:
    [whole] = write_payload(tmp_path / "export", METADATA, blobs, [recipient])
    data = (tmp_path / "export" / "payload.age").read_bytes()
    bundle = fresh(tmp_path / "bundle")
    cuts = [0, 1000, len(data) // 2, len(data)]
    parts = []
    for index, (start, end) in enumerate(itertools.pairwise(cuts)):
        chunk = data[start:end]
        (bundle / f"payload.age.{index:03d}").write_bytes(chunk)
        parts.append(
            PayloadPart(f"payload.age.{index:03d}", len(chunk), hashlib.sha256(chunk).hexdigest())
        )
    assert sum(p.size for p in parts) == whole.size

    paths = check_parts(bundle, parts)
    dest = fresh(tmp_path / "dest")
    result = read_payload(paths, [identity], dest, Recorder(allowed_of(blobs)))
    assert_unpacked(result, blobs, dest)


def test_an_empty_identity_list_decrypts_nothing(tmp_path: Path, recipient: str) -> None:
    write_payload(tmp_path / "b", METADATA, [], [recipient])
    on_metadata = Recorder({})
    dest = fresh(tmp_path / "dest")
    with pytest.raises(DecryptionError):
        read_payload(open_parts([tmp_path / "b" / "payload.age"]), [], dest, on_metadata)
    assert on_metadata.calls == []
    assert list(dest.iterdir()) == []


def test_archive_without_blobs_calls_on_metadata_at_the_end(
    tmp_path: Path, identity: Any, recipient: str
) -> None:
    write_payload(tmp_path / "b", METADATA, [], [recipient])
    on_metadata = Recorder({})
    dest = fresh(tmp_path / "dest")
    result = read_payload(
        open_parts([tmp_path / "b" / "payload.age"]), [identity], dest, on_metadata
    )
    assert on_metadata.calls == [dict(METADATA)]
    assert result.blobs == {}
    assert list(dest.iterdir()) == []


def test_empty_archive(tmp_path: Path, identity: Any, recipient: str) -> None:
    write_payload(tmp_path / "b", [], [], [recipient])
    on_metadata = Recorder({})
    result = read_payload(
        open_parts([tmp_path / "b" / "payload.age"]), [identity], fresh(tmp_path / "d"), on_metadata
    )
    assert (result.metadata, result.blobs, on_metadata.calls) == ({}, {}, [{}])


def test_write_payload_replaces_an_older_payload(
    tmp_path: Path, blobs: list[BlobSource], recipient: str
) -> None:
    write_payload(tmp_path / "b", METADATA, [], [recipient])
    [part] = write_payload(tmp_path / "b", METADATA, blobs, [recipient])
    assert hash_file(tmp_path / "b" / "payload.age") == (part.size, part.sha256)
    assert os.listdir(tmp_path / "b") == ["payload.age"]


# --- interoperability with the stock tools ----------------------------------------------------


def test_stock_age_and_tar_read_our_payload(
    tmp_path: Path, blobs: list[BlobSource], recipient: str, key_file: Path
) -> None:
    write_payload(tmp_path / "b", METADATA, blobs, [recipient])
    payload = tmp_path / "b" / "payload.age"
    listing = sh(f"age -d -i {key_file} {payload} | tar tf -").split()
    assert listing == [n for n, _ in METADATA] + [f"blobs/sha256/{b.sha256}" for b in blobs]

    out = fresh(tmp_path / "x")
    sh(f"age -d -i {key_file} {payload} | tar xf - -C {out}")
    for blob in blobs:
        assert (out / "blobs" / "sha256" / blob.sha256).read_bytes() == blob.path.read_bytes()
    assert (out / "metadata" / "image" / "1.root.json").read_bytes() == METADATA[0][1]


def test_we_read_a_python_tar_encrypted_by_stock_age(
    tmp_path: Path, blobs: list[BlobSource], identity: Any, recipient: str
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in METADATA:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for blob in blobs:
            tar.add(blob.path, arcname=f"blobs/sha256/{blob.sha256}")
    plain = tmp_path / "p.tar"
    plain.write_bytes(buf.getvalue())
    encrypted = tmp_path / "payload.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted), str(plain)], check=True)

    dest = fresh(tmp_path / "dest")
    result = read_payload(open_parts([encrypted]), [identity], dest, Recorder(allowed_of(blobs)))
    assert_unpacked(result, blobs, dest)


def test_we_read_a_gnu_tar_made_by_stock_tar(
    tmp_path: Path, blobs: list[BlobSource], identity: Any, recipient: str
) -> None:
    tree = tmp_path / "tree"
    names = []
    for name, data in METADATA:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
        names.append(name)
    (tree / "blobs" / "sha256").mkdir(parents=True)
    for blob in blobs:
        (tree / "blobs" / "sha256" / blob.sha256).write_bytes(blob.path.read_bytes())
        names.append(f"blobs/sha256/{blob.sha256}")
    encrypted = tmp_path / "payload.age"
    sh(f"tar cf - -C {tree} {' '.join(names)} | age -r {recipient} > {encrypted}")
    dest = fresh(tmp_path / "dest")
    result = read_payload(open_parts([encrypted]), [identity], dest, Recorder(allowed_of(blobs)))
    assert_unpacked(result, blobs, dest)


# --- decryption failures ------------------------------------------------------------------------


@pytest.fixture
def encrypted(tmp_path: Path, blobs: list[BlobSource], recipient: str) -> bytes:
    write_payload(tmp_path / "b", METADATA, blobs, [recipient])
    return (tmp_path / "b" / "payload.age").read_bytes()


def _read_refused(
    tmp_path: Path, data: bytes, identities: list[Any], blobs: list[BlobSource]
) -> pytest.ExceptionInfo[DecryptionError]:
    payload = tmp_path / "tampered.age"
    payload.write_bytes(data)
    dest = fresh(tmp_path / "dest")
    with pytest.raises(DecryptionError) as info:
        read_payload(open_parts([payload]), identities, dest, Recorder(allowed_of(blobs)))
    assert list(dest.iterdir()) == []  # no plaintext outlives the failure
    return info


def test_wrong_identity(tmp_path: Path, encrypted: bytes, blobs: list[BlobSource]) -> None:
    info = _read_refused(tmp_path, encrypted, [x25519.Identity.generate()], blobs)
    assert "not encrypted to this site" in info.value.message


def test_flipped_byte_in_ciphertext(
    tmp_path: Path, encrypted: bytes, blobs: list[BlobSource], identity: Any
) -> None:
    # Late in the stream: the metadata and first blobs decrypt fine, the big blob is
    # being written when authentication fails.
    tampered = bytearray(encrypted)
    tampered[len(tampered) - 20_000] ^= 0x01
    info = _read_refused(tmp_path, bytes(tampered), [identity], blobs)
    assert "damaged or truncated" in info.value.message


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_ciphertext(
    tmp_path: Path, encrypted: bytes, blobs: list[BlobSource], identity: Any, keep: float
) -> None:
    info = _read_refused(tmp_path, encrypted[: int(len(encrypted) * keep)], [identity], blobs)
    assert "damaged or truncated" in info.value.message


def test_truncated_at_an_age_chunk_boundary(
    tmp_path: Path, encrypted: bytes, blobs: list[BlobSource], identity: Any
) -> None:
    header_end = encrypted.index(b"\n---") + encrypted[encrypted.index(b"\n---") + 1 :].index(b"\n")
    body = header_end + 2 + 16  # after the header line and the 16-byte nonce
    cut = body + 10 * (64 * 1024 + 16)  # whole chunks: only the missing last-chunk flag tells
    _read_refused(tmp_path, encrypted[:cut], [identity], blobs)


def test_not_an_age_file(tmp_path: Path, blobs: list[BlobSource], identity: Any) -> None:
    info = _read_refused(tmp_path, b"this is not age\n" * 100, [identity], blobs)
    assert "cannot be decrypted" in info.value.message


def test_decryption_errors_carry_no_key_material(
    tmp_path: Path, encrypted: bytes, blobs: list[BlobSource], identity: Any
) -> None:
    info = _read_refused(tmp_path, encrypted[:-10], [identity], blobs)
    secret = str(identity)
    assert secret not in str(info.value.to_dict())


# --- writer input validation --------------------------------------------------------------------


def _assert_nothing_written(out_dir: Path) -> None:
    assert not out_dir.exists() or os.listdir(out_dir) == []


def test_writer_refuses_bad_input(tmp_path: Path, blobs: list[BlobSource], recipient: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="invalid payload metadata name"):
        write_payload(out, [("metadata/image/../x", b"")], [], [recipient])
    with pytest.raises(UsageError, match="listed twice"):
        write_payload(out, METADATA + METADATA[:1], [], [recipient])
    with pytest.raises(UsageError, match="listed twice"):
        write_payload(out, [], [blobs[1], blobs[1]], [recipient])
    with pytest.raises(UsageError, match="not a valid age X25519 recipient"):
        write_payload(out, METADATA, blobs, ["age1notarecipient"])
    with pytest.raises(UsageError, match="no age recipient"):
        write_payload(out, METADATA, blobs, [])
    _assert_nothing_written(out)


def test_writer_checks_blob_files(tmp_path: Path, blobs: list[BlobSource], recipient: str) -> None:
    out = tmp_path / "out"
    missing = BlobSource(sha256="0" * 64, path=tmp_path / "nope", length=3)
    with pytest.raises(NotFoundError, match="missing"):
        write_payload(out, METADATA, [missing], [recipient])
    wrong_length = BlobSource(blobs[1].sha256, blobs[1].path, blobs[1].length + 1)
    with pytest.raises(IntegrityError, match="expected"):
        write_payload(out, METADATA, [wrong_length], [recipient])
    _assert_nothing_written(out)


def test_writer_failure_mid_stream_leaves_no_file(
    tmp_path: Path, blobs: list[BlobSource], recipient: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob that shrinks after the up-front check: the tar stage fails, nothing is promoted."""
    from airlock.bundles.bundle import _writer as payload_writer

    real_check = payload_writer._check_entries
    shrinking = tmp_path / "shrinking"
    shrinking.write_bytes(blobs[2].path.read_bytes())
    source = BlobSource(blobs[2].sha256, shrinking, blobs[2].length)

    def check_then_shrink(*args: Any) -> None:
        real_check(*args)
        with open(shrinking, "r+b") as handle:
            handle.truncate(1000)

    monkeypatch.setattr(payload_writer, "_check_entries", check_then_shrink)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match="changed size"):
        write_payload(out, METADATA, [blobs[1], source], [recipient])
    assert os.listdir(out) == []


def test_disk_full_while_writing_stops_every_stage(
    tmp_path: Path, recipient: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airlock.bundles import bundle as streams

    big = tmp_path / "big"
    big.write_bytes(b"\x00" * (12 << 20))
    source = BlobSource(hashlib.sha256(big.read_bytes()).hexdigest(), big, 12 << 20)
    real_write = streams.DurableWriter.write

    def write_until_full(self: streams.DurableWriter, data: Any) -> None:
        if self.size > (2 << 20):
            raise OSError(28, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(streams.DurableWriter, "write", write_until_full)
    out = tmp_path / "out"
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(MediaError, match="No space left on device"):
        write_payload(out, METADATA, [source], [recipient])
    assert os.listdir(out) == []
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert [t.name for t in threading.enumerate() if t.name.startswith("payload-")] == []


def test_disk_full_while_unpacking_is_a_storage_error(
    tmp_path: Path, blobs: list[BlobSource], identity: Any, recipient: str
) -> None:
    """A real 2 MiB tmpfs under a 3 MiB blob: the kernel says ENOSPC."""
    write_payload(tmp_path / "b", METADATA, blobs, [recipient])
    with small_tmpfs(tmp_path / "disk", 2 << 20) as disk:
        dest = fresh(disk / "dest")
        with pytest.raises(StorageError, match="No space left on device") as info:
            read_payload(
                open_parts([tmp_path / "b" / "payload.age"]),
                [identity],
                dest,
                Recorder(allowed_of(blobs)),
            )
        assert str(dest) in info.value.message
        assert info.value.exit_code == 7 and info.value.hint.startswith("free space on")
        assert list(dest.iterdir()) == []


# --- check_parts and hash_file ------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path: Path, blobs: list[BlobSource], recipient: str) -> tuple[Path, PayloadPart]:
    [part] = write_payload(tmp_path / "bundle", METADATA, blobs, [recipient])
    (tmp_path / "bundle" / "envelope.json").write_text("{}")  # other files are fine
    return tmp_path / "bundle", part


def test_check_parts_ok(bundle: tuple[Path, PayloadPart]) -> None:
    directory, part = bundle
    with check_parts(directory, [part]) as parts:
        assert parts.names == ["payload.age"]
        assert [f.closed for f in parts.files] == [False]
    assert [f.closed for f in parts.files] == [True]


def test_check_parts_missing(bundle: tuple[Path, PayloadPart]) -> None:
    directory, part = bundle
    (directory / "payload.age").unlink()
    with pytest.raises(MediaError, match="missing"):
        check_parts(directory, [part])


def test_check_parts_size_mismatch(bundle: tuple[Path, PayloadPart]) -> None:
    directory, part = bundle
    with open(directory / "payload.age", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(IntegrityError, match="bytes, the signed envelope says"):
        check_parts(directory, [part])


def test_check_parts_hash_mismatch(bundle: tuple[Path, PayloadPart]) -> None:
    directory, part = bundle
    data = bytearray((directory / "payload.age").read_bytes())
    data[-1] ^= 0xFF
    (directory / "payload.age").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="SHA-256"):
        check_parts(directory, [part])


def test_check_parts_refuses_extra_payload_files(bundle: tuple[Path, PayloadPart]) -> None:
    directory, part = bundle
    (directory / "payload.age.001").write_bytes(b"stray")
    with pytest.raises(MediaError, match=r"unexpected file payload\.age\.001"):
        check_parts(directory, [part])


def test_hash_file(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) * 2 + 17)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == (len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / "e").write_bytes(b"")
    assert hash_file(tmp_path / "e") == (0, hashlib.sha256(b"").hexdigest())


def test_dest_dir_must_be_empty(tmp_path: Path, identity: Any, recipient: str) -> None:
    write_payload(tmp_path / "b", METADATA, [], [recipient])
    dest = fresh(tmp_path / "dest")
    (dest / "already-here").write_text("x")
    with pytest.raises(UsageError, match="empty directory"):
        read_payload(open_parts([tmp_path / "b" / "payload.age"]), [identity], dest, Recorder({}))
    assert os.listdir(dest) == ["already-here"]


def test_pyrage_behaviour_we_rely_on(identity: Any) -> None:
    """The failure kinds read_payload maps to DecryptionError (streaming API)."""
    data = pyrage.encrypt(b"x" * 200_000, [identity.to_public()])
    with pytest.raises(pyrage.DecryptError, match="No matching keys"):
        pyrage.decrypt_io(io.BytesIO(data), io.BytesIO(), [x25519.Identity.generate()])
    out = io.BytesIO()
    with pytest.raises(OSError, match="decryption error"):
        pyrage.decrypt_io(io.BytesIO(data[:-1]), out, [identity])
    assert out.getvalue()  # partial plaintext is written before the failure
