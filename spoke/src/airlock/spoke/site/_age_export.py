"""The site's age identity for the stock tools: ``airlock spoke identity export-age``.

A data volume of a bundle is a standard age file: with the site's identity in
``age-keygen``'s format, stock ``age -d -i FILE volume.age | tar t`` lists what
a volume holds, to check (or recover) a medium by hand. The identity is kept
sealed in the home (:mod:`._home`); this writes it out in plaintext, on
purpose, and so:

- it needs the site passphrase (it unseals the identity as an import does);
- the file is created new, mode 0600, never through a symbolic link and never
  over an existing file (``ConflictError``, exit 3);
- the file is complete or absent: written, flushed to disk, and removed again
  if anything after its creation fails, the audit entry included;
- every attempt is audited (``spoke.identity.export-age``, success or
  failure, with the file's path and the public recipient: never the key).

The CLI prints :data:`WARNING` on standard error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.audit import failure_details
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import AirlockError, ConflictError, MissingFileError, StorageError
from airlock.bundles.storage import os_storage_error
from airlock.spoke.site._home import SpokeHome

EXPORT_AGE_ACTION = "spoke.identity.export-age"
FILE_MODE = 0o600
WARNING = (
    "warning: {path} holds this site's age identity in plaintext: whoever reads it can "
    "decrypt every bundle sent to this site. Keep it on the import machine, never on the "
    "medium or a shared disk, and shred it after use (shred -u {path})."
)
"""What the CLI says on standard error after writing the file (``{path}``: the file)."""


@dataclass(frozen=True)
class AgeIdentityExport:
    """What :func:`export_age_identity` wrote (public data only)."""

    path: Path
    recipient: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``), also the audit entry's details."""
        return {"path": str(self.path), "recipient": self.recipient, "created": self.created}


def age_keygen_text(secret_key: str, recipient: str, created: str) -> str:
    """The identity file exactly as ``age-keygen`` writes it: two comment lines, the key."""
    return f"# created: {created}\n# public key: {recipient}\n{secret_key}\n"


def rfc3339(when: dt.datetime) -> str:
    """``when`` as age-keygen stamps it (RFC 3339, whole seconds; here in UTC)."""
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def export_age_identity(
    home: SpokeHome, out: Path, clock: Clock | None = None
) -> AgeIdentityExport:
    """Writes the site's age identity to the new file ``out``, and audits it.

    Raises:
        ConflictError: ``out`` exists (a file, a directory or a link): nothing is written.
        MissingFileError: the directory of ``out`` does not exist.
        SecretError: the site passphrase is missing or wrong.
        StorageError: ``out`` cannot be written (full, read-only, not writable).
        AuditWriteError: the audit entry cannot be written: the file is removed.
    """
    now = (clock or SystemClock()).now()
    out = Path(out).absolute()
    try:
        result = _export(home, out, now)
    except AirlockError as exc:
        with contextlib.suppress(AirlockError):  # the refusal itself is what the user must see
            home.audit.record(
                EXPORT_AGE_ACTION,
                "failure",
                object=home.site_id,
                details={"path": str(out), **failure_details(exc)},
                when=now,
            )
        raise
    try:
        home.audit.record(
            EXPORT_AGE_ACTION, "success", object=home.site_id, details=result.to_dict(), when=now
        )
    except BaseException:
        out.unlink(missing_ok=True)  # not audited: not done
        raise
    return result


def _export(home: SpokeHome, out: Path, now: dt.datetime) -> AgeIdentityExport:
    if os.path.lexists(out):
        raise ConflictError(
            f"{out} already exists; the site's identity is never written over a file or link",
            hint="choose a new --out path (and shred the old copy if it is one)",
        )
    if not out.parent.is_dir():
        raise MissingFileError(f"the directory {out.parent} does not exist")
    identity = home.age_identity()  # asks for the passphrase: SecretError when wrong
    result = AgeIdentityExport(out, str(identity.to_public()), rfc3339(now))
    _write_new(out, age_keygen_text(str(identity), result.recipient, result.created).encode())
    return result


def _write_new(path: Path, data: bytes) -> None:
    """Creates ``path`` (never through a link, never over a file), mode 0600, with ``data``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise ConflictError(
            f"{path} already exists; the site's identity is never written over a file or link",
            hint="choose a new --out path",
        ) from None
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        path.unlink(missing_ok=True)  # never a partial key file
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from None
        raise
    os.close(fd)


def _write_error(exc: OSError, path: Path) -> AirlockError:
    storage = os_storage_error(exc, path, "write the site's age identity to")
    if storage is not None:
        return storage
    return StorageError(
        f"cannot write the site's age identity to {path}: {exc.strerror or exc}",
        hint="choose a --out path in a directory you may write",
    )
