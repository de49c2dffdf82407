"""Storage faults told apart and explained: a full disk, a read-only or unwritable home.

A full disk or a read-only home is not a bug and not an attack: the operator
can fix it. These helpers turn the ``OSError`` of a file write, or the
database driver's error at a commit, into a
:class:`~airlock.bundles.errors.StorageError` (exit 7) that names the path
and the real cause, with a hint that says what to do. Errors that are not a
storage fault are left to the caller (``None``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from airlock.bundles.errors import StorageError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
STORAGE_ERRNOS = FULL_ERRNOS | {errno.EROFS, errno.EACCES, errno.EPERM}
"""The ``errno`` values of a write that the operator must fix on the machine."""

_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")
_UNWRITABLE_TEXTS = ("attempt to write a readonly database", "unable to open database")
_PG_DISK_FULL = "53100"


def full_hint(path: Path) -> str:
    """What to do when the filesystem holding ``path`` is full."""
    return f"free space on the filesystem holding {path} (or raise its quota), then retry"


def read_only_hint(path: Path) -> str:
    """What to do when ``path`` is on a read-only filesystem."""
    return f"the home {path} is read-only: remount it read-write, then retry"


def not_writable_hint(path: Path) -> str:
    """What to do when the user running airlock may not write ``path``."""
    return (
        f"{path} is not writable by the user running airlock: run as the owner of the home "
        "or fix its permissions, then retry"
    )


def os_storage_error(
    exc: OSError, path: Path, doing: str, home: Path | None = None
) -> StorageError | None:
    """The StorageError for a failed file write, or None when ``exc`` is not a storage fault.

    Args:
        exc: The error of the write.
        path: What was being written (named in the message).
        doing: What was being done, e.g. ``"write the unpacked payload under"``.
        home: The home directory, named in the hint of a read-only filesystem.
    """
    if exc.errno not in STORAGE_ERRNOS:
        return None
    cause = exc.strerror or str(exc)
    message = f"cannot {doing} {path}: {cause}"
    if exc.errno in FULL_ERRNOS:
        return StorageError(message, hint=full_hint(path))
    if exc.errno == errno.EROFS or _read_only(path):
        return StorageError(message, hint=read_only_hint(home or path))
    return StorageError(message, hint=not_writable_hint(path))


def database_storage_error(
    exc: BaseException, url: URL, home: Path | None = None
) -> StorageError | None:
    """The StorageError for a failed database write, or None when it is not a storage fault.

    Recognises SQLite's "database or disk is full", "attempt to write a readonly
    database" and "unable to open database file", and PostgreSQL's disk-full
    state (53100).
    """
    if not isinstance(exc, DBAPIError):
        return None
    cause = cause_of(exc)
    lowered = cause.lower()
    where = url.database if url.get_backend_name() == "sqlite" and url.database else None
    shown = where or url.render_as_string(hide_password=True)
    message = f"the database {shown} cannot be written: {cause}"
    state = getattr(exc.orig, "sqlstate", None)
    if state == _PG_DISK_FULL or any(text in lowered for text in _FULL_TEXTS):
        return StorageError(message, hint=full_hint(Path(where) if where else Path(shown)))
    if where and any(text in lowered for text in _UNWRITABLE_TEXTS):
        path = Path(where)
        if _read_only(path):
            return StorageError(message, hint=read_only_hint(home or path.parent))
        return StorageError(message, hint=not_writable_hint(path))
    return None


def cause_of(exc: BaseException) -> str:
    """The real cause of a storage or database error, in words (no SQL, no parameters)."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        return text or type(orig).__name__
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _read_only(path: Path) -> bool:
    """True when ``path`` (or its nearest existing parent) is on a read-only filesystem."""
    for candidate in (path, *path.parents):
        try:
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False
