"""What ``airlock spoke import`` runs: the import by format, ``--status`` and ``--abandon``.

* :func:`import_media` takes the directories given. One directory holding a
  format-1 ``envelope.json`` (or nothing recognisable) goes down the format-1
  path unchanged (:func:`~airlock.spoke.importing._importer.import_format_1`);
  anything else is the media of a format-2 bundle
  (:func:`~airlock.spoke.importing._volumes_import.import_volumes`), under the
  import lock, audited as one ``spoke.import`` (or ``spoke.import.partial``).
* :func:`import_status` says, for every pending format-2 import, what each
  volume is (verified / partial / missing / damaged / present on the given
  media) and what is still needed. It needs no passphrase.
* :func:`abandon_import` drops a pending import's state (audited).

Every run of the command first drops the states of expired or superseded
bundles (:func:`~airlock.spoke.importing._pending.tidy`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from airlock.bundles.bundle import ENVELOPE_FILE, read_envelope_file
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    NotFoundError,
    UsageError,
)
from airlock.bundles.models import BUNDLE_ID_PATTERN
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.spoke.importing import _pending as pending_state
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._importer import import_format_1
from airlock.spoke.importing._media import SITES_DIR, VOLUME_FILE, envelope_format, scan_media
from airlock.spoke.importing._steps import audited_import, load_state
from airlock.spoke.importing._storage import import_lock
from airlock.spoke.site._home import SpokeHome

if TYPE_CHECKING:  # the format-2 modules (volumes, zfec) load only when a bundle needs them
    from airlock.spoke.importing._pending_status import PendingStatus


def import_bundle(home: SpokeHome, bundle_dir: Path, clock: Clock | None = None) -> ImportResult:
    """Imports the bundle in one directory, whatever its format (see :func:`import_media`)."""
    return import_media(home, [Path(bundle_dir)], clock)


def import_media(
    home: SpokeHome,
    dirs: list[Path],
    clock: Clock | None = None,
    progress: Progress = NO_PROGRESS,
    on_read: Callable[[int], None] | None = None,
) -> ImportResult:
    """Imports the bundle in ``dirs`` (one directory per medium); see the module docstring.

    Raises:
        NotEnoughVolumesError: a format-2 bundle's volumes are missing or damaged beyond
            what parity rebuilds (exit 9); what was verified is kept.
        AirlockError: the subclass names what failed; nothing was staged.
    """
    clock = clock or SystemClock()
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise UsageError("no bundle directory given", hint="name the bundle's directory")
    if len(dirs) == 1 and _format_1(dirs[0]):
        _tidy_best_effort(home, clock)
        result = import_format_1(home, dirs[0], clock)
        _tidy_best_effort(home, clock)
        return result
    from airlock.spoke.importing._volumes_import import import_volumes

    fallback = ",".join(d.name for d in dirs)[:200]
    with audited_import(home, clock, fallback) as audit, import_lock(home, clock):
        media = scan_media(dirs, home.site_id)
        if media.envelope is not None and envelope_format(media.envelope) == 1:
            raise UsageError(
                "a format-1 bundle is one directory (envelope.json and payload.*)",
                hint="give that one directory alone",
            )
        return import_volumes(home, media, clock, audit, progress, on_read)


def _format_1(directory: Path) -> bool:
    """Whether one directory goes down the format-1 path (see the module docstring).

    Any doubt (an unreadable or malformed envelope) sends it there too: that path
    refuses it with the message and audit entry it always gave.
    """
    if (directory / ENVELOPE_FILE).exists() or (directory / ENVELOPE_FILE).is_symlink():
        try:
            return envelope_format(read_envelope_file(directory)) != 2
        except AirlockError:
            return True
    try:
        has_volumes = any(VOLUME_FILE.fullmatch(p.name) for p in directory.iterdir())
    except OSError:
        return True
    return not has_volumes and not (directory / SITES_DIR).is_dir()


def _tidy_best_effort(home: SpokeHome, clock: Clock) -> None:
    """Drops expired or superseded format-2 states around a format-1 import (never blocks it)."""
    if not pending_state.has_pending_area(home):
        return
    with contextlib.suppress(AirlockError), import_lock(home, clock):
        state, _trusted = load_state(home)
        pending_state.tidy(home, state.last_sequence, clock.now())


@contextlib.contextmanager
def _lock_if_free(home: SpokeHome, clock: Clock) -> Iterator[bool]:
    """The import lock when no import holds it (True), else nothing (False)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(import_lock(home, clock))
        except UsageError:
            yield False
            return
        yield True


def import_status(
    home: SpokeHome, dirs: list[Path] | None = None, clock: Clock | None = None
) -> list[PendingStatus]:
    """What every pending format-2 import holds and still needs (no passphrase needed).

    With ``dirs``, also which volumes those media carry. While another import
    runs, only the list of pending imports is given (its state is in use).

    Raises:
        StorageError: the staging area cannot be read.
        MediaError: a directory given cannot be read, or mixes bundles.
    """
    from airlock.spoke.importing._pending_status import pending_status

    clock = clock or SystemClock()
    media = scan_media(dirs, home.site_id) if dirs else None
    with _lock_if_free(home, clock) as locked:
        if locked and pending_state.has_pending_area(home):
            state, _trusted = load_state(home)
            pending_state.tidy(home, state.last_sequence, clock.now())
        found, _broken = pending_state.list_pending(home)
        return [pending_status(home, pending, media, read_state=locked) for pending in found]


def abandon_import(
    home: SpokeHome, bundle_id: str | None = None, clock: Clock | None = None
) -> dict[str, object]:
    """Drops a pending import's state (the only one, or ``bundle_id``'s); audited first.

    Raises:
        NotFoundError: no pending import (of that bundle).
        UsageError: several are pending and none was named; another import is running.
    """
    clock = clock or SystemClock()
    if bundle_id is not None and not BUNDLE_ID_PATTERN.fullmatch(bundle_id):
        raise UsageError(
            f"{bundle_id[:80]!r} is not a bundle id",
            hint="`airlock spoke import --status` lists the pending imports and their ids",
        )
    with import_lock(home, clock):
        found, _broken = pending_state.list_pending(home)
        if bundle_id is not None:
            found = [p for p in found if p.bundle_id == bundle_id]
        if not found:
            raise NotFoundError(
                "no pending import" + (f" of bundle {bundle_id}" if bundle_id else ""),
                hint="`airlock spoke import --status` lists the pending imports",
            )
        if len(found) > 1:
            raise ConflictError(
                f"{len(found)} imports are pending: "
                + ", ".join(f"{p.bundle_id} (sequence {p.sequence})" for p in found),
                hint="name the one to abandon: `airlock spoke import --abandon BUNDLE_ID`",
            )
        pending = found[0]
        record: dict[str, object] = {
            "bundle_id": pending.bundle_id,
            "sequence": pending.sequence,
            "reason": "abandoned by the site admin",
        }
        home.audit.record(
            pending_state.ABANDON_ACTION,
            "success",
            object=pending.bundle_id,
            details=record,
            when=clock.now(),
        )
        pending_state.drop(home, pending.path)
    return record
