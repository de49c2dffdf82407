"""The plaintext of one data volume, produced straight from the blob store.

Chunk bytes are read with ``preadv`` into the caller's buffer (no copy) and hashed
there; each chunk's SHA-256 must equal its index before the volume is finished,
so a blob store that rotted since the index was made stops the export with the
file and chunk named.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airlock.bundles.errors import IntegrityError, MediaError, NotFoundError
from airlock.bundles.volumes._format import BLOCK, HEAD_BYTES, entry_header, volume_head
from airlock.bundles.volumes._plan import PlannedVolume, SeriesFile, Source

_ZEROS = memoryview(bytes(1 << 20))
_ROTTEN_HINT = "the hub's blob store is damaged: re-import the model version, then export again"


class BlobFiles:
    """Open blob files (at most ``limit`` at once), each checked for its signed size."""

    def __init__(self, limit: int = 64) -> None:
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def fd(self, item: SeriesFile) -> int:
        """A descriptor for ``item``'s file."""
        key = item.sha256
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        try:
            fd = os.open(item.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {item.sha256} is missing: {item.path} does not exist",
                hint="the blob store is incomplete; re-import the model version",
            ) from None
        except OSError as exc:
            raise MediaError(f"cannot read {item.path}: {exc.strerror}") from None
        size = os.fstat(fd).st_size
        if size != item.index.length:
            os.close(fd)
            raise IntegrityError(
                f"blob {item.sha256} at {item.path} has {size:,} bytes, "
                f"its index {item.index.length:,}",
                hint=_ROTTEN_HINT,
            )
        self._fds[key] = fd
        if len(self._fds) > self._limit:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def close(self) -> None:
        """Closes every descriptor."""
        while self._fds:
            os.close(self._fds.popitem()[1])


@dataclass
class _Data:
    """A chunk's data while it is being read."""

    source: Source
    offset: int
    remaining: int
    digest: Any


class VolumeProducer:
    """Fills buffers with the plaintext of one data volume, in order."""

    def __init__(
        self,
        series: str,
        volume: PlannedVolume,
        of: int,
        files: BlobFiles,
        hashed_elsewhere: Callable[[int], bool] = lambda j: False,
    ) -> None:
        self._series = series
        self._volume = volume
        self._of = of
        self._files = files
        self._elsewhere = hashed_elsewhere
        self._pieces = self._iter_pieces()
        self._bytes: memoryview | None = None
        self._data: _Data | None = None
        self.produced = 0

    @property
    def done(self) -> bool:
        """Whether the whole plaintext was produced."""
        return self.produced >= self._volume.plain_size

    def _iter_pieces(self) -> Iterator[bytes | memoryview | _Data]:
        yield volume_head(self._series, self._volume.number, self._of)
        pairs = zip(self._volume.entries, self._volume.sources, strict=True)
        for j, (entry, source) in enumerate(pairs):
            yield entry_header(entry.name, entry.length)
            offset = source.file.index.span(source.chunk)[0]
            digest = None if self._elsewhere(j) else hashlib.sha256()
            yield _Data(source, offset, entry.length, digest)
            if entry.length % BLOCK:
                yield _ZEROS[: -entry.length % BLOCK]
        end = self._volume.entries[-1].end if self._volume.entries else HEAD_BYTES
        yield _ZEROS[: self._volume.plain_size - end]

    def fill(self, view: memoryview) -> int:
        """Fills ``view`` with the next plaintext bytes; fewer only at the end of the volume."""
        filled = 0
        size = len(view)
        while filled < size:
            if self._bytes is None and self._data is None:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                if isinstance(piece, _Data):
                    self._data = piece
                else:
                    self._bytes = memoryview(piece)
            if self._bytes is not None:
                take = min(len(self._bytes), size - filled)
                view[filled : filled + take] = self._bytes[:take]
                filled += take
                self._bytes = self._bytes[take:] if take < len(self._bytes) else None
            else:
                filled += self._read(view[filled:])
        self.produced += filled
        return filled

    def _read(self, view: memoryview) -> int:
        data = self._data
        assert data is not None
        item = data.source.file
        take = min(data.remaining, len(view))
        count = os.preadv(self._files.fd(item), [view[:take]], data.offset)
        if count <= 0:
            raise IntegrityError(
                f"blob {item.sha256} at {item.path} is shorter than its index", hint=_ROTTEN_HINT
            )
        if data.digest is not None:
            data.digest.update(view[:count])
        data.offset += count
        data.remaining -= count
        if not data.remaining:
            self._data = None
            expected = item.index.chunks[data.source.chunk]
            if data.digest is not None and data.digest.hexdigest() != expected:
                raise rotten(data.source)
        return count


def rotten(source: Source) -> IntegrityError:
    """The error for a blob chunk whose bytes are not those its index says."""
    item = source.file
    return IntegrityError(
        f"blob {item.sha256} at {item.path}, chunk {source.chunk:,}: "
        "SHA-256 differs from its chunk index",
        hint=_ROTTEN_HINT,
    )
