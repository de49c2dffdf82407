"""The content-addressed blob store: ``blobs/sha256/<hex>``, written by streaming.

Files are hashed while they are copied (1 MiB buffers, flat memory), into a
staging directory on the same file system, and promoted with ``os.replace``,
so a blob in the store is always complete and named by its own hash.

Each blob's chunk index (bundle format 2, :mod:`airlock.bundles.chunks`) is
computed once, on first use, and kept next to the store in
``blobs/chunks/<hex>.json``; a cached index that does not describe the blob
(damaged, or of another chunk size) is computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.chunks import CHUNK_SIZE, ChunkIndex, index_file
from airlock.bundles.errors import IntegrityError, NotFoundError

CHUNK = 1 << 20


def copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    """Copies ``src`` to a new file ``dst`` while hashing; returns (sha256 hex, length).

    ``dst`` is fsynced before returning. Memory use is one buffer.
    """
    digest = hashlib.sha256()
    length = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(src, "rb") as reader, open(dst, "xb") as writer:
        while True:
            count = reader.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            writer.write(view[:count])
            length += count
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), length


class BlobStore:
    """The hub's blob store under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, sha256: str) -> Path:
        """Where the blob with this SHA-256 lives (whether or not it exists)."""
        return self.directory / sha256

    @property
    def index_dir(self) -> Path:
        """Where the chunk indexes of the blobs are cached (``blobs/chunks``)."""
        return self.directory.parent / "chunks"

    def chunk_index(self, sha256: str, length: int) -> ChunkIndex:
        """The blob's chunk index: the cached one, or computed (one read) and cached.

        Raises:
            NotFoundError: the blob is missing.
            IntegrityError: the blob's size or SHA-256 is not the recorded one.
        """
        cached = self.index_dir / f"{sha256}.json"
        with contextlib.suppress(FileNotFoundError, IntegrityError):
            index = ChunkIndex.from_bytes(cached.read_bytes())
            if (index.sha256, index.length, index.chunk_size) == (sha256, length, CHUNK_SIZE):
                return index
        index = index_file(self.checked_path(sha256, length), sha256, length)
        atomic_write_bytes(cached, index.to_bytes())
        return index

    def has(self, sha256: str) -> bool:
        """True when the blob is in the store."""
        return self.path(sha256).is_file()

    def promote(self, staged: Path, sha256: str) -> bool:
        """Moves a staged file (already hashed) into the store.

        Returns:
            True when the blob is new; False when it was already stored (the
            staged copy is then discarded).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(sha256)
        if target.exists():
            staged.unlink()
            return False
        staged.replace(target)
        return True

    def remove(self, sha256: str) -> None:
        """Deletes a blob and its cached chunk index (undoes a promotion that did not commit)."""
        for path in (self.path(sha256), self.index_dir / f"{sha256}.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def checked_path(self, sha256: str, length: int) -> Path:
        """The path of a blob after checking it exists with the expected size.

        Raises:
            NotFoundError: the blob is missing.
            IntegrityError: its size is not the recorded one.
        """
        path = self.path(sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {sha256} is missing from the hub's blob store",
                hint="restore blobs/ from backup, or add the model version again",
            ) from None
        if size != length:
            raise IntegrityError(
                f"blob {sha256} has {size} bytes, the release recorded {length}",
                hint="the blob store was altered; restore blobs/ from backup",
            )
        return path
