"""A forward-only view of a plaintext tar stream, for the strict unpacker.

``tarfile`` parses headers through :meth:`ArchiveStream.read`/``tell``/``seek``,
under a per-entry byte budget (pax records and GNU long names cannot make it
hold much memory); entry data is read with :meth:`ArchiveStream.readinto`
straight into the caller's buffer. Nothing is ever read twice or backwards, so
the source can be a pipe.
"""

from __future__ import annotations

import os
import tarfile
from typing import Any, Protocol

from airlock.bundles.bundle._streams import CHUNK
from airlock.bundles.errors import MediaError, UnsafeArchiveError

_BLOCK = tarfile.BLOCKSIZE
TRUNCATED_HINT = "the payload is incomplete or damaged; copy the bundle again"


class RawReader(Protocol):
    """What the unpacker reads from: a pipe or the concatenated payload parts."""

    def readinto(self, buffer: Any, /) -> int | None:
        """Reads into ``buffer``; returns 0 at the end."""


class ArchiveStream:
    """A forward-only view of the plaintext tar, with the file API tarfile uses for headers."""

    def __init__(self, raw: RawReader, header_limit: int) -> None:
        self._raw = raw
        self._pending = bytearray()  # bytes peeked at but not yet consumed
        self._pos = 0
        self._header_limit = header_limit
        self._header_bytes = 0
        self._scratch = bytearray(CHUNK)
        self.scratch = memoryview(self._scratch)

    def _raw_readinto(self, view: memoryview) -> int:
        try:
            return self._raw.readinto(view) or 0
        except OSError as exc:
            raise MediaError(f"cannot read the payload: {exc}", hint=TRUNCATED_HINT) from None

    def _fill(self, size: int) -> None:
        while len(self._pending) < size:
            chunk = bytearray(size - len(self._pending))
            count = self._raw_readinto(memoryview(chunk))
            if not count:
                return
            self._pending += chunk[:count]

    def tell(self) -> int:
        """Position in the archive."""
        return self._pos

    def peek(self, size: int) -> bytes:
        """Up to ``size`` next bytes, without consuming them."""
        self._fill(size)
        return bytes(self._pending[:size])

    def start_header(self) -> None:
        """Resets the per-entry header budget."""
        self._header_bytes = 0

    def read(self, size: int = -1) -> bytes:
        """Header reads by tarfile, bounded by the per-entry header budget."""
        self._header_bytes += max(size, 0)
        if size < 0 or self._header_bytes > self._header_limit:
            raise UnsafeArchiveError(
                f"tar header data above {self._header_limit} bytes at offset {self._pos}",
                hint="the payload was not made by Airlock; do not import it",
            )
        self._fill(size)
        data = bytes(self._pending[:size])
        del self._pending[:size]
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward seeks only (tarfile never needs more when headers are consistent)."""
        if whence != os.SEEK_SET:
            raise UnsafeArchiveError("unsupported seek while reading the payload archive")
        self.skip_to(pos)
        return self._pos

    def skip_to(self, pos: int) -> None:
        """Consumes bytes up to archive position ``pos``."""
        if pos < self._pos:
            raise UnsafeArchiveError(f"tar header at offset {self._pos} points backwards")
        while self._pos < pos:
            if not self.readinto(self.scratch[: min(pos - self._pos, CHUNK)]):
                raise MediaError("the payload archive is truncated", hint=TRUNCATED_HINT)

    def readinto(self, view: memoryview) -> int:
        """Entry data: straight from the source into ``view`` (no extra copy)."""
        if self._pending:
            count = min(len(view), len(self._pending))
            view[:count] = self._pending[:count]
            del self._pending[:count]
        else:
            count = self._raw_readinto(view)
        self._pos += count
        return count

    def fill(self, view: memoryview, where: str) -> None:
        """Fills ``view`` completely (MediaError when the archive ends first)."""
        got = 0
        while got < len(view):
            count = self.readinto(view[got:])
            if not count:
                raise MediaError(
                    f"the payload archive is truncated inside {where}", hint=TRUNCATED_HINT
                )
            got += count

    def check_trailer(self) -> None:
        """At the end-of-archive marker: at least two zero blocks and nothing but zeros after."""
        zeros = 0
        while count := self.readinto(self.scratch):
            if self._scratch.count(0, 0, count) != count:
                raise UnsafeArchiveError(
                    f"data after the end-of-archive marker (near offset {self._pos})",
                    hint="the payload was not made by Airlock; do not import it",
                )
            zeros += count
        if zeros < 2 * _BLOCK:
            raise MediaError(
                "the payload archive's end-of-archive marker is truncated", hint=TRUNCATED_HINT
            )
