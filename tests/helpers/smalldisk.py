"""Real small disks for storage-fault tests: a size-limited tmpfs, remountable read-only,
and a read-only bind mount of one file.

Nothing is faked: the kernel refuses the writes (``ENOSPC``, ``EROFS``), as a
full or read-only disk at a site would. Mounting needs root (the test
machines and CI run as root); without it the tests that use these helpers fail
and say so — a storage check that silently does not run is no check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def can_mount() -> bool:
    """True when this process may mount filesystems (root with the ``mount`` tool)."""
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int) -> Iterator[Path]:
    """Mounts a tmpfs of ``size`` bytes at the new directory ``path``; unmounts it after."""
    if not can_mount():
        pytest.fail("mounting a small tmpfs needs root (run the storage-fault tests as root)")
    path.mkdir(parents=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


def remount(path: Path, read_only: bool) -> None:
    """Remounts the tmpfs at ``path`` read-only (or read-write again)."""
    _run("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(path))


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[Path]:
    """Bind-mounts the file ``path`` read-only onto itself; unmounts it after.

    The file can be read but not written (``EROFS``) while its directory stays
    writable, as for a database file on a read-only mount.
    """
    if not can_mount():
        pytest.fail("a read-only bind mount needs root (run the storage-fault tests as root)")
    _run("mount", "--bind", str(path), str(path))
    try:
        _run("mount", "-o", "remount,ro,bind", str(path))
        yield path
    finally:
        _run("umount", "-l", str(path))


def grow(path: Path, size: int) -> None:
    """Resizes the tmpfs at ``path`` to ``size`` bytes (an operator freeing space)."""
    _run("mount", "-o", f"remount,size={size}", str(path))


def fill(path: Path, leave: int = 0) -> Path:
    """Fills the filesystem of directory ``path`` up to ``leave`` free bytes; returns the filler."""
    filler = path / "filler"
    with open(filler, "ab") as handle:
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            if free <= leave:
                break
            try:
                handle.write(b"\0" * min(free - leave, 1 << 20))
                handle.flush()
            except OSError:
                break
    return filler


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)
