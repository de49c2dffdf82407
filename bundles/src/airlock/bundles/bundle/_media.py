"""Where a bundle's files are: one or several directories (one per medium), in any order.

A format-2 bundle may span media: the small files (``envelope.json`` and the
per-site part) travel on at least one of them, the volumes wherever they fit.
:func:`locate_bundle` looks in every given directory for the envelope, at
the top (a single-site export) or under ``sites/<site id>/`` (an export for
several sites that share the volumes), and for every volume the envelope
names, at the top. It decides nothing about trust: the envelope it returns
is parsed but not verified. It refuses what would make the reading
ambiguous — two different envelopes for the same site, two copies of a
volume in different directories — naming the files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlock.bundles.bundle._envelope import ENVELOPE_FILE, read_envelope_file, unverified_envelope
from airlock.bundles.errors import MediaError, UsageError
from airlock.bundles.models import Envelope, VolumeRecord

SITES_DIR = "sites"
_ONE_COPY_HINT = "give each medium once, and only the media of one bundle"


@dataclass(frozen=True)
class VolumeOnMedia:
    """A volume the envelope names, and what the directories hold of it.

    Attributes:
        record: What the signed envelope says about it.
        path: Where it was found (None: missing).
        size: Its size on the medium (None: missing).
    """

    record: VolumeRecord
    path: Path | None
    size: int | None

    @property
    def state(self) -> str:
        """``present``, ``missing`` or ``wrong size`` (by size only: no byte is read)."""
        if self.path is None:
            return "missing"
        return "present" if self.size == self.record.size else "wrong size"


@dataclass(frozen=True)
class LocatedBundle:
    """A bundle's files across the given directories (the envelope still unverified).

    Attributes:
        envelope_bytes: The bytes of ``envelope.json`` (verify them before use).
        envelope: What they claim, parsed strictly, NOT verified.
        envelope_dir: The directory holding the envelope and the per-site part.
        volumes: Every volume the envelope names, found or not, in envelope order.
        site_part: The per-site part's path (None: not in ``envelope_dir``; format 1: None).
    """

    envelope_bytes: bytes
    envelope: Envelope
    envelope_dir: Path
    volumes: list[VolumeOnMedia] = field(default_factory=list)
    site_part: Path | None = None

    def missing(self) -> list[VolumeRecord]:
        """The volumes not found in any directory."""
        return [v.record for v in self.volumes if v.path is None]


def envelope_dirs(directory: Path, site_id: str | None = None) -> list[Path]:
    """The directories under ``directory`` that hold an ``envelope.json``.

    The top, then ``sites/<site id>/`` (every site when ``site_id`` is None).
    """
    directory = Path(directory)
    found = [directory] if os.path.lexists(directory / ENVELOPE_FILE) else []
    sites = directory / SITES_DIR
    if sites.is_dir() and not sites.is_symlink():
        names = [site_id] if site_id is not None else sorted(p.name for p in sites.iterdir())
        found += [sites / n for n in names if os.path.lexists(sites / n / ENVELOPE_FILE)]
    return found


def locate_bundle(directories: Sequence[Path], site_id: str | None = None) -> LocatedBundle:
    """Finds the envelope (for ``site_id``, or the only one) and the volumes it names.

    Raises:
        UsageError: no directory given, or several sites' envelopes and no ``site_id``.
        MediaError: no envelope, two different envelopes, a volume in two
            directories, or a volume that is not a regular file.
    """
    directories = [Path(d) for d in directories]
    if not directories:
        raise UsageError("no bundle directory given", hint="name the directory of each medium")
    candidates = [d for directory in directories for d in envelope_dirs(directory, site_id)]
    if not candidates:
        where = ", ".join(str(d) for d in directories)
        raise MediaError(
            f"no {ENVELOPE_FILE} in {where}"
            + (f" (nor under {SITES_DIR}/{site_id}/)" if site_id else ""),
            hint="give the directory of the medium that carries the bundle's envelope.json",
        )
    copies = {d: read_envelope_file(d) for d in candidates}
    distinct = set(copies.values())
    if len(distinct) > 1:
        if site_id is None:
            raise UsageError(
                "these media carry the envelopes of several sites or bundles: "
                + ", ".join(str(d) for d in candidates),
                hint="say which site to look at",
            )
        raise MediaError(
            "the media carry different envelopes for this site: "
            + ", ".join(str(d / ENVELOPE_FILE) for d in candidates),
            hint=_ONE_COPY_HINT,
        )
    envelope_dir = candidates[0]
    data = copies[envelope_dir]
    envelope = unverified_envelope(data)
    site_part = None
    if envelope.site_part is not None:
        path = envelope_dir / envelope.site_part.name
        site_part = path if os.path.lexists(path) else None
    volumes = [_find_volume(record, directories) for record in envelope.volumes]
    return LocatedBundle(data, envelope, envelope_dir, volumes, site_part)


def _find_volume(record: VolumeRecord, directories: Sequence[Path]) -> VolumeOnMedia:
    found: list[tuple[Path, int]] = []
    for directory in dict.fromkeys(directories):
        path = directory / record.name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise MediaError(
                f"cannot read {path}: {exc.strerror}", hint="check that the medium is mounted"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(
                f"{record.label} at {path} is not a regular file",
                hint="copy the volumes as plain files (not links, devices or FIFOs)",
            )
        found.append((path, info.st_size))
    if len(found) > 1:
        raise MediaError(
            f"{record.label} is in more than one directory: " + ", ".join(str(p) for p, _ in found),
            hint=_ONE_COPY_HINT,
        )
    if not found:
        return VolumeOnMedia(record, None, None)
    return VolumeOnMedia(record, found[0][0], found[0][1])
