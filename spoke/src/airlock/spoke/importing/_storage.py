"""Where an import keeps its files: the lock, private scratch, the blob store, storage faults.

An import decrypts the payload — plaintext models — into a scratch directory
``HOME/tmp/import-<sequence>-<random>``. The scratch space is private:
``HOME/tmp`` and every scratch directory are created mode 0700 (and an older,
laxer ``HOME/tmp`` is tightened), the files inside are written 0600. A crash
(power cut, kill -9) can still leave a scratch directory behind; whoever next
takes the import lock removes every leftover ``import-*`` directory (only real
directories, never through a symbolic link) before doing anything else, and
audits how many it removed (``spoke.import.cleanup``; never what they held).

A full disk, or a read-only or unwritable home, while scratch is made, blobs
are promoted (:func:`promote_blobs`), a format-2 import writes its state
(:func:`write_faults`) or the database commits (:func:`storage_faults`) is a
:class:`~airlock.bundles.errors.StorageError` (exit 7) naming the path and the
cause; the importer then removes what it promoted, and the database
transaction is rolled back (a format-2 state is kept, for the retry).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from airlock.bundles.clock import Clock
from airlock.bundles.errors import AirlockError, StorageError, UsageError
from airlock.bundles.storage import database_storage_error, os_storage_error
from airlock.spoke.site._home import SpokeHome

LOCK_FILE = "import.lock"
SCRATCH_PREFIX = "import-"
CLEANUP_ACTION = "spoke.import.cleanup"
_SCRATCH_NAME = re.compile(r"import-[0-9]+-[A-Za-z0-9_]+")
_PRIVATE = 0o700


@contextlib.contextmanager
def import_lock(home: SpokeHome, clock: Clock) -> Iterator[None]:
    """Holds the spoke's import lock; on entry, removes scratch a crashed import left.

    Raises:
        UsageError: another import holds the lock.
        StorageError: ``HOME/tmp`` cannot be created or written, or leftover
            scratch cannot be removed.
        AuditWriteError: the clean-up could not be audited.
    """
    tmp = private_tmp(home)
    try:
        fd = os.open(
            tmp / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        raise storage_error(exc, tmp / LOCK_FILE, "open the import lock", home) from None
    with open(fd, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                "another import is running on this spoke", hint="wait for it to finish"
            ) from None
        removed = remove_leftovers(home)
        if removed:
            home.audit.record(
                CLEANUP_ACTION,
                "success",
                object=str(tmp),
                details={"removed_scratch_dirs": removed},
                when=clock.now(),
            )
        yield


def private_tmp(home: SpokeHome) -> Path:
    """``HOME/tmp``, created 0700 (an existing one is tightened to 0700).

    Raises:
        StorageError: it cannot be created, or it is not a directory.
    """
    return private_dir(home, home.tmp_dir, "scratch directory")


def private_dir(home: SpokeHome, path: Path, what: str = "import state directory") -> Path:
    """Creates ``path`` 0700 (tightening an existing one); refuses a link or a file there.

    Raises:
        StorageError: it cannot be created, or it is not a real directory.
    """
    try:
        path.mkdir(mode=_PRIVATE, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise StorageError(
                f"{path} is not a directory (a link or a file is in its place)",
                hint=f"remove {path}; the spoke creates its {what} itself",
            )
        if stat.S_IMODE(info.st_mode) != _PRIVATE:
            path.chmod(_PRIVATE)
    except OSError as exc:
        raise storage_error(exc, path, f"create the {what}", home) from None
    return path


def new_scratch(home: SpokeHome, sequence: int) -> Path:
    """A new, empty scratch directory (mode 0700) for the import of bundle ``sequence``.

    Raises:
        StorageError: it cannot be created.
    """
    tmp = private_tmp(home)
    try:
        return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{sequence}-", dir=tmp))
    except OSError as exc:
        raise storage_error(exc, tmp, "create a scratch directory under", home) from None


def remove_leftovers(home: SpokeHome) -> int:
    """Removes the scratch directories of crashed imports; returns how many.

    Only directories named like ours (``import-<sequence>-<random>``) directly
    under ``HOME/tmp`` are removed; a symbolic link is never followed. Call it
    only while holding the import lock.

    Raises:
        StorageError: a leftover cannot be removed (plaintext would stay behind).
    """
    removed = 0
    with os.scandir(home.tmp_dir) as entries:
        leftovers = [
            Path(entry.path)
            for entry in entries
            if _SCRATCH_NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        ]
    for path in sorted(leftovers):
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise storage_error(exc, path, "remove the scratch of a crashed import", home) from None
        removed += 1
    return removed


def promote_blobs(
    home: SpokeHome, blobs: Mapping[str, Path], promoted: list[Path], *, link: bool = False
) -> None:
    """Moves verified blobs into the content-addressed store (same filesystem: a rename).

    Every blob moved is appended to ``promoted`` as it happens, so the caller can
    remove them again if anything later fails. Blobs already stored are skipped.
    With ``link``, each blob is hard-linked instead of renamed, so that its source
    (a resumable import's part file) stays whole if the commit then fails.

    Raises:
        StorageError: the blob store cannot be written.
    """
    for sha256, path in blobs.items():
        destination = home.blob_dir / sha256
        if destination.exists():
            continue
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            if link:
                os.link(path, destination)
            else:
                Path(path).replace(destination)
        except OSError as exc:
            raise storage_error(exc, destination.parent, "stage a model file into", home) from None
        promoted.append(destination)


@contextlib.contextmanager
def storage_faults(home: SpokeHome) -> Iterator[None]:
    """Turns a database write refused for lack of space or write access into a StorageError."""
    try:
        yield
    except DBAPIError as exc:
        storage = database_storage_error(exc, home.engine.url, home.path)
        if storage is None:
            raise
        raise storage from None


@contextlib.contextmanager
def write_faults(home: SpokeHome, path: Path, doing: str) -> Iterator[None]:
    """Turns a write under ``path`` refused for lack of space or write access into a
    StorageError naming ``path`` (``doing``: e.g. "write the verified chunks under")."""
    try:
        yield
    except OSError as exc:
        storage = os_storage_error(exc, path, doing, home.path)
        if storage is None:
            raise
        raise storage from None


def storage_error(exc: OSError, path: Path, doing: str, home: SpokeHome) -> AirlockError:
    """The error of a failed write, naming the path and the cause (StorageError when storage)."""
    found = os_storage_error(exc, path, doing, home.path)
    if found is not None:
        return found
    return AirlockError(
        f"cannot {doing} {path}: {exc.strerror or exc}",
        hint="check the spoke home's disk and permissions, then retry",
    )
