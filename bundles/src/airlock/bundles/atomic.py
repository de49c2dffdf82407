"""Atomic file writes: temp file in the same directory, fsync, then ``os.replace``.

A reader sees either the old file or the complete new one, never a half-written
file, even if the process dies in between.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from airlock.bundles.canonical import pretty_bytes


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes ``data`` to ``path`` atomically.

    Args:
        path: Destination file; its directory is created if missing.
        data: The complete new content.
        mode: Permission bits of the new file (use 0o600 for secrets).
    """
    with atomic_writer(path, mode) as handle:
        handle.write(data)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    """Writes ``obj`` as stable, indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, pretty_bytes(obj), mode)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yields a binary file handle whose content replaces ``path`` only on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise


def fsync_dir(directory: Path) -> None:
    """Flushes a directory entry so that a rename in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
