"""Streaming building blocks shared by the payload writer and reader.

Everything here moves data in 1 MiB buffers so that memory stays flat whatever
the size of a file, and hands big buffers to calls that release the GIL
(``hashlib``, ``os.read``/``os.write``, ``os.sendfile``): the payload code runs
pyrage (which holds the GIL) in one thread and hashing/disk I/O in another, so
both cores work.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
"""Buffer size for file and pipe I/O (1 MiB)."""

AGE_READ_BUFFER = 64 << 10
"""Read buffer in front of pyrage (which reads 8 KiB at a time while holding the GIL).

Each refill is a system call that releases the GIL, which lets the hashing thread
run; measured here, 64 KiB beats both 8 KiB (too many calls) and 1 MiB (the other
thread waits too long for the GIL).
"""

WRITEBACK_STEP = 32 * CHUNK


def open_pipe(size: int = CHUNK) -> tuple[int, int]:
    """Creates a pipe and asks the kernel for a ``size``-byte buffer.

    Returns:
        ``(read_fd, write_fd)``; both are close-on-exec. A refused resize (the
        per-user pipe limit) is ignored: the pipe then keeps its default size.
    """
    read_fd, write_fd = os.pipe()
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_pipe_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, set_pipe_size, size)
    return read_fd, write_fd


def write_all(fd: int, data: memoryview | bytes) -> None:
    """Writes all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class DurableWriter:
    """Writes to a file descriptor and makes the result durable at the end.

    Every 32 MiB it asks the kernel to start writing back what was written
    (``posix_fadvise(DONTNEED)``), so that the final ``fsync`` has little left to
    do and the disk works while the CPU does.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self._kicked = 0

    def write(self, data: memoryview | bytes) -> None:
        """Writes all of ``data``."""
        write_all(self.fd, data)
        self.size += len(data)
        if self.size - self._kicked >= WRITEBACK_STEP:
            if hasattr(os, "posix_fadvise"):
                with contextlib.suppress(OSError):
                    os.posix_fadvise(
                        self.fd, self._kicked, self.size - self._kicked, os.POSIX_FADV_DONTNEED
                    )
            self._kicked = self.size

    def sync(self) -> None:
        """Waits until everything written is on disk."""
        os.fsync(self.fd)


def hash_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in 1 MiB chunks.

    Args:
        path: The file to hash.

    Returns:
        ``(size in bytes, sha256 hex digest)``.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(view)
            if not count:
                break
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


class Stage(threading.Thread):
    """A pipeline thread that keeps the exception its function raised.

    The function must close the pipe ends it owns when it returns or fails,
    so that its neighbours see end-of-file or a broken pipe and stop too.
    """

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        """Runs the function, recording its exception instead of printing it."""
        try:
            self._fn()
        except BaseException as exc:  # re-raised by the caller after join()
            self.error = exc


def is_broken_pipe(exc: BaseException | None) -> bool:
    """True when ``exc`` only says that the other end of a pipe went away.

    Such errors are consequences of a failure elsewhere in the pipeline, never
    the cause; pyrage wraps them in its own exception types, hence the text test.
    """
    if exc is None:
        return False
    return isinstance(exc, BrokenPipeError) or "BrokenPipeError" in str(exc)
