"""The per-site part of a format-2 import: read from the media or the state, its indexes bound.

* :func:`site_from_media` (step 2): the copy next to the envelope, a regular file
  whose size and SHA-256 are the envelope's — checked before the site's identity
  is unlocked, as format 1 checks its payload — decrypted and read strictly;
* :func:`read_copy`: the copy an earlier run verified and kept (plain), read
  strictly again — so a resumed import reads no medium for it;
* :func:`bound_indexes` (step 4): every expected file's chunk index, accepted
  only when it is the one its verified Director target binds — and no index of
  a file the bundle does not carry (as format 1 refuses an unlisted file);
* :func:`plain_site_tar`: the verified part as the plain tar the state keeps.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

from airlock.bundles.chunks import BINDING_KEY, ChunkIndex, check_binding
from airlock.bundles.errors import IntegrityError, MediaError, UnsafeArchiveError
from airlock.bundles.models import Envelope, PayloadPart
from airlock.bundles.tuf import VerifiedMetadata
from airlock.bundles.volumes import SitePart, read_site_part
from airlock.spoke.importing._media import Media

_COPY_AGAIN = "copy the bundle's envelope.json and site.age from the original media again"


def site_from_media(
    media: Media, envelope: Envelope, unlock: Callable[[], list[bytes] | None]
) -> SitePart:
    """Step 2: the per-site part from the media, checked against the envelope.

    Its size and SHA-256 are checked before ``unlock`` (the site's identities) is
    called: a damaged or altered part never costs the passphrase. The bytes
    decrypted are then read again from the same open file and checked again.

    Raises:
        MediaError: it is not next to the envelope, or not a regular file.
        IntegrityError: its size or SHA-256 is not the envelope's.
        DecryptionError, UnsafeArchiveError: it cannot be decrypted, or breaks the rules.
    """
    signed = envelope.site_part
    assert signed is not None  # format 2
    copies = [p for p in media.site_parts if p.name == signed.name]
    if not copies:
        raise MediaError(
            f"the per-site part {signed.name} is not on the given media",
            hint=f"{_COPY_AGAIN} (it sits next to envelope.json), or give the medium that holds it",
        )
    fd = _open_regular(copies[0])
    try:
        _check_signed(fd, signed)
        return read_site_part(fd, unlock(), size=signed.size, sha256=signed.sha256)
    finally:
        os.close(fd)


def _check_signed(fd: int, signed: PayloadPart) -> None:
    """The size and SHA-256 the envelope signs, read from ``fd``; leaves it at the start.

    Raises:
        IntegrityError: they are not the signed ones.
    """
    size = os.fstat(fd).st_size
    if size != signed.size:
        raise IntegrityError(
            f"the per-site part {signed.name} has {size} bytes, the signed envelope says "
            f"{signed.size}",
            hint=_COPY_AGAIN,
        )
    digest = hashlib.sha256()
    left = signed.size + 1  # a file that grows meanwhile reads longer, and fails the hash
    with io.FileIO(fd, "r", closefd=False) as handle:
        while left and (block := handle.read(min(left, 1 << 20))):
            digest.update(block)
            left -= len(block)
    if digest.hexdigest() != signed.sha256:
        raise IntegrityError(
            f"the per-site part {signed.name} does not match the SHA-256 in the signed envelope",
            hint=_COPY_AGAIN,
        )
    os.lseek(fd, 0, os.SEEK_SET)


def bound_indexes(
    site: SitePart, verified: VerifiedMetadata, expected: Mapping[str, int]
) -> dict[str, ChunkIndex]:
    """Step 4: every expected file's index, accepted only as its verified target binds it.

    Raises:
        IntegrityError: an index is missing, or is not the one signed for its file.
        UnsafeArchiveError: the part carries the index of a file the bundle does not carry.
    """
    unlisted = sorted(set(site.indexes) - set(expected))
    if unlisted:
        raise UnsafeArchiveError(
            f"per-site part entry 'index/{unlisted[0]}.json': file not listed in the signed "
            "metadata",
            hint="the per-site part breaks the bundle format; do not import it",
        )
    indexes: dict[str, ChunkIndex] = {}
    for target in verified.targets:
        if target.sha256 not in expected:
            continue
        data = site.indexes.get(target.sha256)
        if data is None:
            raise IntegrityError(
                f"the per-site part carries no chunk index for {target.path}",
                hint="the bundle is incomplete or altered; ask the hub for a new export",
            )
        bound = target.director_custom.get(BINDING_KEY)
        indexes[target.sha256] = check_binding(data, bound, target.sha256, target.length)
    return indexes


def plain_site_tar(site: SitePart) -> bytes:
    """The verified per-site part as a plain tar (what :func:`read_site_part` reads with no key)."""
    buf = io.BytesIO()
    entries = [
        *site.metadata.items(),
        *((f"index/{sha}.json", data) for sha, data in sorted(site.indexes.items())),
        ("layout.json", site.layout.to_bytes()),
    ]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_copy(path: Path) -> SitePart:
    """The per-site part an earlier run verified and kept (plain, read strictly again)."""
    fd = _open_regular(path)
    try:
        return read_site_part(fd, None)
    finally:
        os.close(fd)


def _open_regular(path: Path) -> int:
    """Opens a file of the media without following a link or blocking; it must be regular."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise MediaError(f"cannot open {path}: {exc.strerror}", hint=_COPY_AGAIN) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MediaError(f"{path} is not a regular file", hint=_COPY_AGAIN)
    os.set_blocking(fd, True)
    return fd
