"""Output files written under a temporary name and given their final name only when complete.

A kill -9 at any moment leaves either nothing under a final name or a complete,
fsynced file; temporaries start with a dot and end in ``.tmp``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from airlock.bundles.atomic import fsync_dir
from airlock.bundles.errors import AirlockError, MediaError

WRITEBACK_STEP = 32 << 20

KICK_CHUNKS = 32
"""Chunks written to a .part file between two nudges of the kernel's write-back."""


def start_writeback(fd: int, offset: int = 0) -> None:
    """Asks the kernel to start writing the file back from ``offset`` (``POSIX_FADV_DONTNEED``).

    The final fsync then has little left to wait for: the disk works while the CPU
    verifies, instead of after. Only the range written since the last nudge is named,
    so a nudge costs the same whatever the size of the file.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, 0, os.POSIX_FADV_DONTNEED)


class DurableWriter:
    """Appends to a file descriptor; every 32 MiB asks the kernel to start writing back.

    (``posix_fadvise(DONTNEED)`` starts write-back of what was written, so the final
    fsync has little left to do and the disk works while the CPU does.)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self._kicked = 0

    def write(self, data: memoryview | bytes) -> None:
        """Writes all of ``data``."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)
        if self.size - self._kicked >= WRITEBACK_STEP:
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(
                    self.fd, self._kicked, self.size - self._kicked, os.POSIX_FADV_DONTNEED
                )
            self._kicked = self.size

    def sync(self) -> None:
        """Waits until everything written is on disk."""
        os.fsync(self.fd)


def write_error(exc: OSError, path: Path) -> AirlockError:
    """The error for a failed write of ``path`` (StorageError when the operator can fix it)."""
    from airlock.bundles.storage import os_storage_error  # sqlalchemy: only on this path

    storage = os_storage_error(exc, path, "write")
    if storage is not None:
        return storage
    return MediaError(
        f"cannot write {path}: {exc.strerror or exc}",
        hint="check free space and permissions of the output directory",
    )


class OutputFile:
    """One file being written in ``directory`` under a temporary name."""

    def __init__(self, directory: Path, name: str, mode: int = 0o644) -> None:
        self.final = directory / name
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise write_error(exc, self.final) from None
        self.tmp = Path(tmp)
        os.fchmod(fd, mode)
        self._writer: DurableWriter | None = DurableWriter(fd)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        assert self._writer is not None
        return self._writer.size

    def write(self, data: memoryview | bytes) -> None:
        """Appends ``data``."""
        assert self._writer is not None
        try:
            self._writer.write(data)
        except OSError as exc:
            raise write_error(exc, self.final) from None

    def finish(self) -> None:
        """Makes the temporary file durable and closes it."""
        writer = self._writer
        assert writer is not None
        try:
            writer.sync()
        except OSError as exc:
            raise write_error(exc, self.final) from None
        finally:
            os.close(writer.fd)
            self._writer = None

    def promote(self) -> None:
        """Gives the finished file its final name."""
        self.tmp.replace(self.final)

    def discard(self) -> None:
        """Closes and removes the temporary file."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                os.close(self._writer.fd)
            self._writer = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def promote_all(directory: Path, outputs: list[OutputFile]) -> None:
    """Finishes every output, then renames them all, then makes the renames durable."""
    for out in outputs:
        out.finish()
    for out in outputs:
        out.promote()
    try:
        fsync_dir(directory)
    except OSError as exc:
        raise write_error(exc, directory) from None


def discard_all(outputs: list[OutputFile]) -> None:
    """Removes every temporary (after a failure)."""
    for out in outputs:
        out.discard()
