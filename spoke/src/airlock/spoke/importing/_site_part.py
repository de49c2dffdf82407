"""The per-site part of a format-2 import: read from the media or the state, its indexes bound.

* :func:`site_from_media` (step 2): the copy next to the envelope, a regular file
  whose size and SHA-256 are the envelope's, decrypted and read strictly;
* :func:`read_copy`: the copy an earlier run verified and kept (plain), read
  strictly again — so a resumed import reads no medium for it;
* :func:`bound_indexes` (step 4): every expected file's chunk index, accepted
  only when it is the one its verified Director target binds;
* :func:`plain_site_tar`: the verified part as the plain tar the state keeps.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Mapping
from pathlib import Path

from airlock.bundles.chunks import BINDING_KEY, ChunkIndex, check_binding
from airlock.bundles.errors import IntegrityError, MediaError
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import VerifiedMetadata
from airlock.bundles.volumes import SitePart, read_site_part
from airlock.spoke.importing._media import Media

_COPY_AGAIN = "copy the bundle's envelope.json and site.age from the original media again"


def site_from_media(media: Media, envelope: Envelope, identities: list[bytes] | None) -> SitePart:
    """Step 2: the per-site part from the media, checked against the envelope.

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
        return read_site_part(fd, identities, size=signed.size, sha256=signed.sha256)
    finally:
        os.close(fd)


def bound_indexes(
    site: SitePart, verified: VerifiedMetadata, expected: Mapping[str, int]
) -> dict[str, ChunkIndex]:
    """Step 4: every expected file's index, accepted only as its verified target binds it.

    Raises:
        IntegrityError: an index is missing, or is not the one signed for its file.
    """
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
