"""Finding a bundle's files on the media given to ``airlock spoke import DIR [DIR…]``.

A format-2 bundle may arrive on several media, one directory each, in any
order. :func:`scan_media` looks, in every directory:

* for the envelope as ``DIR/envelope.json`` (a single-site export), else as
  ``DIR/sites/<this site>/envelope.json`` (a multi-site export); every copy
  found must be byte-identical, else the media mix bundles and are refused;
* for the per-site part (``site.age`` or ``site.tar``) in the same places (it
  may sit on another medium than the envelope); copies must be byte-identical too;
* for volumes at the directory's top level, by name
  (``<series>-data-003-of-007.age``, ``<series>-parity-001-of-002.zfec``):
  each must be a regular file (never a link); the same volume name in two
  directories is refused by name (which copy is right cannot be told before
  reading both). Files named like volumes of series this site does not read
  (a multi-site courier's media) are kept aside and ignored.

Nothing here is trusted: the envelope is verified next, the volumes are
checked chunk by chunk. :func:`envelope_format` peeks at the (unverified)
envelope only to send a format-1 bundle down the v1 path unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from airlock.bundles.bundle import ENVELOPE_FILE, parse_envelope_document, read_envelope_file
from airlock.bundles.errors import MediaError, MissingFileError, UsageError
from airlock.bundles.models import SITE_PART_NAMES

SITES_DIR = "sites"
VOLUME_FILE = re.compile(r"[0-9a-f]{16}-(data|parity)-[0-9]{3}-of-[0-9]{3}\.(age|tar|zfec)")
_MAX_SITE_PART_COPY = 256 << 20
_MIXED_HINT = (
    "the media hold files of different bundles; give only the media of one bundle "
    "(each medium's directory once)"
)


@dataclass
class Media:
    """What the given directories hold (nothing verified).

    Attributes:
        dirs: The directories, as given.
        envelope: The bytes of ``envelope.json`` (every copy identical), or None.
        envelope_paths: Where each copy was found.
        site_parts: Every copy of the per-site part found next to an envelope.
        volumes: Volume file name → its path.
    """

    dirs: tuple[Path, ...]
    envelope: bytes | None = None
    envelope_paths: list[Path] = field(default_factory=list)
    site_parts: list[Path] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)

    @property
    def site_part(self) -> Path | None:
        """The first copy of the per-site part (all copies are identical), or None."""
        return self.site_parts[0] if self.site_parts else None


def scan_media(dirs: list[Path] | tuple[Path, ...], site_id: str) -> Media:
    """Finds the envelope, the per-site part and the volumes in ``dirs`` (see the module doc).

    Raises:
        MissingFileError: a directory does not exist.
        UsageError: a directory is given twice.
        MediaError: envelopes or per-site parts that differ, a volume name found in
            two directories, a volume that is not a regular file, or an unreadable
            directory.
    """
    media = Media(tuple(Path(d) for d in dirs))
    seen: dict[tuple[int, int], Path] = {}
    for directory in media.dirs:
        identity = _directory_identity(directory)
        if identity in seen:
            raise UsageError(
                f"{directory} is given twice (also as {seen[identity]})",
                hint="name each medium's directory once",
            )
        seen[identity] = directory
        _scan_envelope(media, directory, site_id)
        _scan_volumes(media, directory)
    _check_site_parts(media)
    return media


def envelope_format(data: bytes) -> int | None:
    """The ``format_version`` an (unverified) envelope claims, or None when it names none.

    Only chooses the import path; the envelope is verified on that path.

    Raises:
        MediaError: not a well-formed envelope file.
    """
    version = parse_envelope_document(data).signed.get("format_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _directory_identity(directory: Path) -> tuple[int, int]:
    try:
        info = Path(directory).stat()
    except FileNotFoundError:
        raise MissingFileError(f"{directory} does not exist") from None
    except OSError as exc:
        raise MediaError(f"cannot read {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise MediaError(
            f"{directory} is not a directory",
            hint="name the directory that holds the bundle's files on each medium",
        )
    return info.st_dev, info.st_ino


def _scan_envelope(media: Media, directory: Path, site_id: str) -> None:
    """The site's files in ``directory``: at its top, else under ``sites/<site id>``."""
    for where in (directory, directory / SITES_DIR / site_id):
        parts = [where / name for name in SITE_PART_NAMES if os.path.lexists(where / name)]
        has_envelope = os.path.lexists(where / ENVELOPE_FILE)
        if not parts and not has_envelope:
            continue
        media.site_parts.extend(parts)
        if has_envelope:
            data = read_envelope_file(where)  # lstat first, bounded, never through a link
            if media.envelope is not None and data != media.envelope:
                raise MediaError(
                    f"{where / ENVELOPE_FILE} differs from {media.envelope_paths[0]}",
                    hint=_MIXED_HINT,
                )
            media.envelope = data
            media.envelope_paths.append(where / ENVELOPE_FILE)
        return


def _scan_volumes(media: Media, directory: Path) -> None:
    try:
        with os.scandir(directory) as entries:
            found = [(entry.name, entry) for entry in entries if VOLUME_FILE.fullmatch(entry.name)]
    except OSError as exc:
        raise MediaError(f"cannot read the directory {directory}: {exc.strerror}") from None
    for name, entry in sorted(found, key=lambda item: item[0]):
        path = directory / name
        if not entry.is_file(follow_symlinks=False):
            raise MediaError(
                f"{path} is not a regular file",
                hint="copy the bundle's volumes as plain files (not links, devices or FIFOs)",
            )
        if name in media.volumes:
            raise MediaError(
                f"volume {name} is in two directories: {media.volumes[name].parent} and "
                f"{directory}",
                hint="give each volume once: leave out the medium with the extra copy (or "
                "import from one copy, then the other if the first is damaged)",
            )
        media.volumes[name] = path


def _check_site_parts(media: Media) -> None:
    """Every copy of the per-site part must be byte-identical (it is small; hash each copy)."""
    digests: dict[str, Path] = {}
    for path in media.site_parts:
        digests.setdefault(_digest(path), path)
    if len(digests) > 1:
        first, second = list(digests.values())[:2]
        raise MediaError(f"{second} differs from {first}", hint=_MIXED_HINT)


def _digest(path: Path) -> str:
    """SHA-256 of a per-site part copy, opened without following a link, with a bound."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise MediaError(
            f"cannot open {path}: {exc.strerror}",
            hint="copy the bundle's files as plain files (not links, devices or FIFOs)",
        ) from None
    digest = hashlib.sha256()
    with open(fd, "rb", buffering=0) as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise MediaError(f"{path} is not a regular file")
        size = 0
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            if size > _MAX_SITE_PART_COPY:
                raise MediaError(f"{path} is too large to be a per-site part")
            digest.update(chunk)
    return digest.hexdigest()
