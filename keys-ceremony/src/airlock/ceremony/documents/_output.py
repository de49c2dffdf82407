"""The ceremony's output directory: all or nothing.

A ceremony is built in a fresh sibling directory (``.<name>.<random>.ceremony``,
mode 0700) and renamed into place only when every step succeeded, so a failed
ceremony leaves no directory behind and an existing ceremony is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from airlock.bundles.atomic import atomic_write_bytes, fsync_dir
from airlock.bundles.ceremony_output import CEREMONY_FILE, sha256_hex
from airlock.bundles.errors import ConflictError, NotFoundError


def check_destination(out_dir: Path) -> None:
    """Refuses a destination that holds a ceremony or anything else.

    An empty existing directory is accepted (it is replaced).

    Raises:
        ConflictError: ``out_dir`` holds a ceremony, other files, or is not a directory.
        NotFoundError: its parent directory does not exist.
    """
    if (out_dir / CEREMONY_FILE).exists():
        raise ConflictError(
            f"{out_dir} already contains a key ceremony; refusing to overwrite its keys",
            hint="choose a new --out directory and keep the existing one as it is",
        )
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ConflictError(
            f"{out_dir} exists and is not a directory",
            hint="choose a new --out directory (the ceremony creates it)",
        )
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ConflictError(
            f"{out_dir} is not empty",
            hint="choose a new --out directory (the ceremony creates it)",
        )
    if not out_dir.parent.is_dir():
        raise NotFoundError(
            f"the parent directory {out_dir.parent} does not exist",
            hint="check the path, or mount the medium first",
        )


@contextlib.contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """Yields an empty private directory next to ``out_dir``; renames it into place on success.

    On any exception the staging directory and everything in it are removed.

    Raises:
        ConflictError: ``out_dir`` appeared (non-empty) while the block ran.
    """
    out_dir = Path(out_dir)
    check_destination(out_dir)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".ceremony", dir=out_dir.parent)
    )
    try:
        yield staging
        try:
            staging.rename(out_dir)  # atomic; replaces only an empty directory
        except OSError:
            raise ConflictError(
                f"{out_dir} appeared while the ceremony ran; nothing was written there",
                hint="choose a new --out directory and run the ceremony again",
            ) from None
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(base: Path, relative: str, data: bytes) -> str:
    """Writes ``base/relative`` atomically and returns the SHA-256 hex of ``data``."""
    atomic_write_bytes(base / relative, data)
    return sha256_hex(data)
