"""The resumable state of a format-2 import: deliberate, private, and dropped on purpose.

A format-2 bundle may need several media, and an import may be interrupted.
What one run verified is kept so that the next run continues where it
stopped and re-reads nothing already verified::

    HOME/staging/                      0700
    HOME/staging/imports/              0700
    HOME/staging/imports/<bundle id>/  0700, at most one per bundle
        state.json                     0600  which bundle: id, sequence, created, expires,
                                             envelope SHA-256, when the import began
        envelope.json                  0600  the verified envelope's bytes
        site.tar                       0600  the decrypted per-site part (once verified)
        assembly/                      the assembler's checkpoints and files/<sha256>.part

Unlike the v1 scratch under ``HOME/tmp`` (wiped by whoever next takes the
import lock), this state survives a crash on purpose. It is never mistaken for
staged models: it is neither in the blob store nor in the database's staged
tables, and nothing is promoted from it before every check passed. Every
directory is created 0700 (a laxer existing one is tightened) and checked with
``lstat`` — a symbolic link in its place is refused, never followed; files are
written 0600, opened ``O_NOFOLLOW``, atomically (temp + rename).

A state is dropped (:func:`drop`) by ``airlock spoke import --abandon``, when
its bundle expires, when a bundle with a higher sequence is imported, when its
bundle is refused for a reason more media cannot fix, and when it completes.
:func:`tidy`, run by every import command under the import lock, applies the
first rules to every state and audits each drop.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import MediaError
from airlock.bundles.models import BUNDLE_ID_PATTERN, Envelope
from airlock.bundles.strict import exact_keys, get_int, get_str, get_utc, strict_json
from airlock.spoke.importing._storage import private_dir, storage_error
from airlock.spoke.site._home import SpokeHome

STATE_FORMAT = "airlock-import-state/1"
STATE_FILE = "state.json"
ENVELOPE_COPY = "envelope.json"
SITE_PART_COPY = "site.tar"
ASSEMBLY_DIR = "assembly"
ABANDON_ACTION = "spoke.import.abandon"
EXPIRED_ACTION = "spoke.import.expired-state"
PARTIAL_ACTION = "spoke.import.partial"
_PRIVATE_FILE = 0o600
_NEW_PREFIX = ".new-"
_MAX_SMALL_FILE = 300 << 20
_STATE_KEYS = (
    "format",
    "bundle_id",
    "sequence",
    "created",
    "expires",
    "envelope_sha256",
    "started_at",
)


@dataclass(frozen=True)
class PendingImport:
    """One bundle's resumable import state (see the module docstring)."""

    path: Path
    bundle_id: str
    sequence: int
    created: dt.datetime
    expires: dt.datetime
    envelope_sha256: str
    started_at: dt.datetime

    @property
    def assembly(self) -> Path:
        """The directory the assembler keeps its checkpoints and part files in."""
        return self.path / ASSEMBLY_DIR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``state.json``)."""
        return {
            "format": STATE_FORMAT,
            "bundle_id": self.bundle_id,
            "sequence": self.sequence,
            "created": utc_iso(self.created),
            "expires": utc_iso(self.expires),
            "envelope_sha256": self.envelope_sha256,
            "started_at": utc_iso(self.started_at),
        }

    def read(self, name: str) -> bytes | None:
        """A file of the state (None when it is not there yet).

        Raises:
            MediaError: it is not a regular file or cannot be read.
        """
        return read_private(self.path / name)

    def write(self, home: SpokeHome, name: str, data: bytes) -> None:
        """Writes a file of the state atomically, 0600.

        Raises:
            StorageError: the disk is full, or the home is read-only.
        """
        write_private(home, self.path / name, data)


def imports_root(home: SpokeHome) -> Path:
    """``HOME/staging/imports``, created 0700 (checked: real directories, never links).

    Raises:
        StorageError: it cannot be created, or a path in its place is not a directory.
    """
    root = home.path / "staging" / "imports"
    private_dir(home, root.parent)
    private_dir(home, root)
    return root


def has_pending_area(home: SpokeHome) -> bool:
    """Whether ``HOME/staging/imports`` (or anything in its place) exists."""
    return os.path.lexists(home.path / "staging" / "imports")


def write_private(home: SpokeHome, path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temp file 0600 in the same directory, rename).

    Raises:
        StorageError: the disk is full, or the home is read-only or not writable.
    """
    fd, tmp_name = -1, ""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
        tmp_name = ""
    except OSError as exc:
        raise storage_error(exc, path, "write the import state", home) from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)


def read_private(path: Path) -> bytes | None:
    """A file of an import state, opened without following a link (None: absent).

    Raises:
        MediaError: not a regular file, too large, or unreadable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MediaError(
            f"cannot read the import state file {path}: {exc.strerror}",
            hint="abandon the pending import (`airlock spoke import --abandon`) and import again",
        ) from None
    with open(fd, "rb", buffering=0) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_SMALL_FILE:
            raise MediaError(
                f"the import state file {path} is not a regular file of a plausible size",
                hint="abandon the pending import (`airlock spoke import --abandon`)",
            )
        return handle.read(_MAX_SMALL_FILE + 1)


def parse_state(path: Path, data: bytes) -> PendingImport:
    """Parses ``state.json`` of the state directory ``path``.

    Raises:
        MediaError: malformed, or it names another bundle than its directory.
    """
    try:
        doc = exact_keys(strict_json(data), STATE_FILE, _STATE_KEYS)
        if get_str(doc, "format") != STATE_FORMAT:
            raise ValueError(f"format is not {STATE_FORMAT!r}")
        pending = PendingImport(
            path=path,
            bundle_id=get_str(doc, "bundle_id"),
            sequence=get_int(doc, "sequence", low=1),
            created=parse_utc(get_utc(doc, "created")),
            expires=parse_utc(get_utc(doc, "expires")),
            envelope_sha256=get_str(doc, "envelope_sha256"),
            started_at=parse_utc(get_utc(doc, "started_at")),
        )
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise MediaError(f"the import state {path} is malformed: {exc}") from None
    if pending.bundle_id != path.name:
        raise MediaError(f"the import state {path} names bundle {pending.bundle_id}")
    return pending


def list_pending(home: SpokeHome) -> tuple[list[PendingImport], list[tuple[Path, str]]]:
    """Every import state, oldest sequence first, and the unreadable ones (path, why).

    Raises:
        StorageError: the staging area is not private and cannot be made so.
    """
    found: list[PendingImport] = []
    broken: list[tuple[Path, str]] = []
    if not has_pending_area(home):  # made with the first state
        return found, broken
    root = imports_root(home)  # a link in its place is refused, never followed
    with os.scandir(root) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if BUNDLE_ID_PATTERN.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        )
    for name in names:
        path = root / name
        try:
            data = read_private(path / STATE_FILE)
            if data is None:
                raise MediaError(f"the import state {path} has no {STATE_FILE}")
            found.append(parse_state(path, data))
        except MediaError as exc:
            broken.append((path, exc.message))
    found.sort(key=lambda p: (p.sequence, p.bundle_id))
    return found, broken


def find_pending(home: SpokeHome, bundle_id: str) -> PendingImport | None:
    """The import state of ``bundle_id``, or None."""
    found, _broken = list_pending(home)
    return next((p for p in found if p.bundle_id == bundle_id), None)


def create_pending(
    home: SpokeHome, envelope: Envelope, envelope_bytes: bytes, digest: str, now: dt.datetime
) -> PendingImport:
    """Creates the state of a verified envelope's bundle: built aside, then renamed into place.

    Raises:
        StorageError: it cannot be written.
    """
    root = imports_root(home)
    try:
        work = Path(tempfile.mkdtemp(prefix=f"{_NEW_PREFIX}{envelope.bundle_id}-", dir=root))
    except OSError as exc:
        raise storage_error(exc, root, "create the import state under", home) from None
    pending = PendingImport(
        path=root / envelope.bundle_id,
        bundle_id=envelope.bundle_id,
        sequence=envelope.sequence,
        created=envelope.created,
        expires=envelope.expires,
        envelope_sha256=digest,
        started_at=now,
    )
    try:
        write_private(home, work / ENVELOPE_COPY, envelope_bytes)
        write_private(home, work / STATE_FILE, canonical_bytes(pending.to_dict()))
        private_dir(home, work / ASSEMBLY_DIR)
        try:
            work.rename(pending.path)
        except OSError as exc:
            raise storage_error(exc, pending.path, "create the import state", home) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return pending


def drop(home: SpokeHome, path: Path) -> None:
    """Removes an import state directory (never through a link).

    Raises:
        StorageError: it cannot be removed.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, path, "remove the import state", home) from None
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise storage_error(exc, path, "remove the import state", home) from None


def tidy(home: SpokeHome, last_sequence: int, now: dt.datetime) -> list[dict[str, Any]]:
    """Drops every state whose bundle expired, or that a newer import superseded; audits each.

    Also removes unreadable states and states a crash left half-created.
    Call it only while holding the import lock.

    Returns:
        One record per dropped state: bundle_id, sequence, reason.

    Raises:
        StorageError: a state cannot be removed.
        AuditWriteError: a drop cannot be audited.
    """
    if not has_pending_area(home):
        return []
    root = imports_root(home)
    with os.scandir(root) as entries:
        halfmade = [root / e.name for e in entries if e.name.startswith(_NEW_PREFIX)]
    for path in halfmade:
        drop(home, path)
    found, broken = list_pending(home)
    dropped: list[dict[str, Any]] = []
    for path, why in broken:
        record: dict[str, Any] = {
            "bundle_id": path.name,
            "sequence": None,
            "reason": f"unreadable: {why}",
        }
        home.audit.record(ABANDON_ACTION, "success", object=path.name, details=record, when=now)
        drop(home, path)  # audited first: no state disappears without an entry
        dropped.append(record)
    for pending in found:
        if pending.expires <= now:
            action = EXPIRED_ACTION
            reason = f"the bundle expired at {utc_iso(pending.expires)}"
        elif pending.sequence <= last_sequence:
            action = ABANDON_ACTION
            reason = f"superseded: the site already imported sequence {last_sequence}"
        else:
            continue
        record = {
            "bundle_id": pending.bundle_id,
            "sequence": pending.sequence,
            "reason": reason,
        }
        home.audit.record(action, "success", object=pending.bundle_id, details=record, when=now)
        drop(home, pending.path)
        dropped.append(record)
    return dropped
