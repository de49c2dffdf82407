"""Chunk indexes: one read hashes every chunk, the bytes are canonical, a binding admits only
the index signed for the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airlock.bundles.chunks import ChunkIndex, binding, check_binding, index_file
from airlock.bundles.errors import IntegrityError, NotFoundError


def _file(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / f"f{size}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 1024, 1025, 4096])
def test_every_chunk_is_hashed_in_order(tmp_path: Path, size: int) -> None:
    path, digest = _file(tmp_path, size)
    index = index_file(path, digest, size, chunk_size=1024)
    data = path.read_bytes()
    assert index.chunks == tuple(
        hashlib.sha256(data[i : i + 1024]).hexdigest() for i in range(0, size, 1024)
    )
    for i in range(len(index.chunks)):
        offset, length = index.span(i)
        assert hashlib.sha256(data[offset : offset + length]).hexdigest() == index.chunks[i]


def test_the_bytes_round_trip_and_are_canonical(tmp_path: Path) -> None:
    path, digest = _file(tmp_path, 3000)
    index = index_file(path, digest, 3000, chunk_size=1024)
    data = index.to_bytes()
    assert ChunkIndex.from_bytes(data) == index
    assert b" " not in data and data.startswith(b'{"chunking":')
    assert index.digest() == hashlib.sha256(data).hexdigest()


def test_a_file_that_is_not_the_signed_one_is_refused(tmp_path: Path) -> None:
    path, digest = _file(tmp_path, 3000)
    with pytest.raises(IntegrityError, match="is not the file"):
        index_file(path, digest, 2999)
    with pytest.raises(IntegrityError, match="is not the file"):
        index_file(path, "0" * 64, 3000)
    with pytest.raises(NotFoundError):
        index_file(tmp_path / "absent", digest, 3000)


def test_the_binding_admits_only_the_signed_index(tmp_path: Path) -> None:
    path, digest = _file(tmp_path, 3000)
    index = index_file(path, digest, 3000, chunk_size=1024)
    bound = binding(index)
    assert check_binding(index.to_bytes(), bound, digest, 3000) == index

    other = ChunkIndex(digest, 3000, 1024, (index.chunks[0], "f" * 64, index.chunks[2]))
    with pytest.raises(IntegrityError, match="does not match the signed digest"):
        check_binding(other.to_bytes(), bound, digest, 3000)
    with pytest.raises(IntegrityError, match="carries no chunk-index binding"):
        check_binding(index.to_bytes(), None, digest, 3000)
    with pytest.raises(IntegrityError, match="describes another file"):
        check_binding(index.to_bytes(), bound, "1" * 64, 3000)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'{"format": "airlock-chunks/2"}',
        b'{"chunking":{"algorithm":"fixed","size":1024},"chunks":[],"format":"airlock-chunks/1",'
        b'"length":5,"sha256":"' + b"a" * 64 + b'"}',
        b'{"chunking":{"algorithm":"cdc","size":1024},"chunks":[],"format":"airlock-chunks/1",'
        b'"length":0,"sha256":"' + b"a" * 64 + b'"}',
        b'{"chunking":{"algorithm":"fixed","size":1024},"chunks":[],"format":"airlock-chunks/1",'
        b'"length":0,"sha256":"' + b"a" * 64 + b'","extra":1}',
        b'{"chunking":{"algorithm":"fixed","size":1024},"chunks":["A"],"format":"airlock-chunks/1",'
        b'"length":1,"sha256":"' + b"a" * 64 + b'"}',
    ],
)
def test_a_malformed_index_is_refused(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed chunk index"):
        ChunkIndex.from_bytes(data)
