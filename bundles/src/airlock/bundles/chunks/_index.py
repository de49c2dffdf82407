"""The chunk index of one file: the SHA-256 of every fixed-size chunk, and its signed binding.

Bundle format v2 carries files as chunks (1 MiB, the last one shorter), each
checked on its own as it arrives, so that damage is reported by place and an
interrupted import resumes by chunk. The index lists every chunk's hash; it
travels inside the encryption (the per-site part), and its SHA-256 is signed
into the file's Director target (``custom.airlock.chunks``), so an index is
accepted only when it is the one the hub signed for that file
(:func:`check_binding`). The bytes are canonical JSON::

    {"format": "airlock-chunks/1", "sha256": "<file>", "length": N,
     "chunking": {"algorithm": "fixed", "size": 1048576},
     "chunks": ["<sha256 of chunk 0>", ...]}
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import IntegrityError, NotFoundError
from airlock.bundles.strict import MAX_SAFE_INTEGER, exact_keys, get_int, get_str, strict_json

CHUNK_SIZE = 1 << 20
"""Bytes per chunk (the last chunk of a file is shorter)."""

INDEX_FORMAT = "airlock-chunks/1"
BINDING_KEY = "chunks"
"""The key of ``custom.airlock`` in a Director target that carries the index's binding."""

_MAX_INDEX_BYTES = 64 << 20
_HEX = frozenset("0123456789abcdef")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


@dataclass(frozen=True)
class ChunkIndex:
    """The chunk hashes of one file.

    Attributes:
        sha256: The whole file's SHA-256 (hex).
        length: The file's size in bytes.
        chunk_size: Bytes per chunk; chunk ``i`` covers ``[i*size, min((i+1)*size, length))``.
        chunks: The SHA-256 (hex) of every chunk, in order.
    """

    sha256: str
    length: int
    chunk_size: int
    chunks: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _is_sha256(self.sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        if not 0 <= self.length <= MAX_SAFE_INTEGER or not 1 <= self.chunk_size <= 1 << 30:
            raise ValueError("length or chunk size out of range")
        if len(self.chunks) != -(-self.length // self.chunk_size):
            raise ValueError(
                f"{len(self.chunks)} chunk hashes for {self.length} bytes "
                f"in chunks of {self.chunk_size}"
            )
        if not all(_is_sha256(c) for c in self.chunks):
            raise ValueError("every chunk hash must be 64 lower-case hex digits")

    def span(self, i: int) -> tuple[int, int]:
        """``(offset, length)`` of chunk ``i`` in the file."""
        if not 0 <= i < len(self.chunks):
            raise IndexError(f"chunk {i} out of range (0 … {len(self.chunks) - 1})")
        offset = i * self.chunk_size
        return offset, min(self.chunk_size, self.length - offset)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {
            "format": INDEX_FORMAT,
            "sha256": self.sha256,
            "length": self.length,
            "chunking": {"algorithm": "fixed", "size": self.chunk_size},
            "chunks": list(self.chunks),
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes (what the binding's digest covers)."""
        return canonical_bytes(self.to_dict())

    def digest(self) -> str:
        """SHA-256 (hex) of :meth:`to_bytes`."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkIndex:
        """Parses an index strictly (exact fields and types).

        Raises:
            IntegrityError: not a well-formed chunk index.
        """
        try:
            if len(data) > _MAX_INDEX_BYTES:
                raise ValueError(f"it has {len(data)} bytes (at most {_MAX_INDEX_BYTES})")
            doc = exact_keys(
                strict_json(data), "the index", ("format", "sha256", "length", "chunking", "chunks")
            )
            if get_str(doc, "format") != INDEX_FORMAT:
                raise ValueError(f"format is not {INDEX_FORMAT!r}")
            chunking = exact_keys(doc["chunking"], "chunking", ("algorithm", "size"))
            if get_str(chunking, "algorithm") != "fixed":
                raise ValueError("chunking algorithm is not 'fixed'")
            chunks = doc["chunks"]
            if not isinstance(chunks, list):
                raise TypeError("chunks is not a list")
            return cls(
                sha256=get_str(doc, "sha256"),
                length=get_int(doc, "length"),
                chunk_size=get_int(chunking, "size", 1),
                chunks=tuple(chunks),
            )
        except (ValueError, TypeError, RecursionError) as exc:
            raise IntegrityError(
                f"malformed chunk index: {exc}",
                hint="the bundle's per-site part is damaged or forged; copy the bundle again",
            ) from None


def binding(index: ChunkIndex) -> dict[str, Any]:
    """The value signed into the file's Director target as ``custom.airlock.chunks``."""
    return {"index_sha256": index.digest(), "count": len(index.chunks)}


def check_binding(
    index_bytes: bytes, bound: Mapping[str, Any] | None, sha256: str, length: int
) -> ChunkIndex:
    """Accepts an index only when it is the one signed for the file ``sha256``/``length``.

    Args:
        index_bytes: The index as carried in the bundle.
        bound: ``custom.airlock.chunks`` of the file's verified Director target
            (None when the target carries none).
        sha256: The file's signed SHA-256.
        length: The file's signed length.

    Raises:
        IntegrityError: no binding, a digest or count that differs, or an index
            that describes another file.
    """
    if not isinstance(bound, Mapping) or not _is_sha256(bound.get("index_sha256")):
        raise IntegrityError(
            f"the signed target of {sha256[:16]}… carries no chunk-index binding",
            hint="the bundle was made by a hub that does not write format 2; export it again",
        )
    digest = hashlib.sha256(index_bytes).hexdigest()
    if digest != bound["index_sha256"]:
        raise IntegrityError(
            f"the chunk index of {sha256[:16]}… does not match the signed digest "
            f"({digest[:16]}… carried, {str(bound['index_sha256'])[:16]}… signed)",
            hint="the bundle's per-site part was altered; copy the bundle again",
        )
    index = ChunkIndex.from_bytes(index_bytes)
    if index.sha256 != sha256 or index.length != length or len(index.chunks) != bound.get("count"):
        raise IntegrityError(
            f"the chunk index signed for {sha256[:16]}… describes another file",
            hint="the hub's signed metadata is inconsistent; report it to the release engineer",
        )
    return index


def index_file(path: Path, sha256: str, length: int, chunk_size: int = CHUNK_SIZE) -> ChunkIndex:
    """Hashes ``path`` chunk by chunk (one read) and checks the whole file's hash and size.

    Raises:
        NotFoundError: the file does not exist.
        IntegrityError: its size or SHA-256 is not the expected one.
    """
    whole = hashlib.sha256()
    hashes: list[str] = []
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    size = 0
    try:
        with open(path, "rb", buffering=0) as src:
            assert isinstance(src, io.FileIO)
            while True:
                filled = 0
                while filled < chunk_size:
                    count = src.readinto(view[filled:])
                    if not count:
                        break
                    filled += count
                if not filled:
                    break
                whole.update(view[:filled])
                hashes.append(hashlib.sha256(view[:filled]).hexdigest())
                size += filled
                if filled < chunk_size:
                    break
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist", hint="the blob store is incomplete") from None
    if size != length or whole.hexdigest() != sha256:
        raise IntegrityError(
            f"{path} is not the file {sha256[:16]}… of {length} bytes",
            hint="the blob store is damaged; re-import the model version",
        )
    return ChunkIndex(sha256=sha256, length=length, chunk_size=chunk_size, chunks=tuple(hashes))
