"""The payload parts of a bundle, checked and then held open until they are decrypted.

What is decrypted must be exactly what was hashed. :func:`check_parts` opens
every part once (``O_NOFOLLOW``, non-blocking, so neither a link nor a FIFO
is followed or waited on), checks with ``fstat`` that it is a regular file of
the signed size, hashes it from that descriptor and returns the open files as
:class:`PayloadParts`. :func:`airlock.bundles.bundle._payload.read_payload` then
decrypts from the same descriptors, rewound: a file renamed over a part's
path in between (while the site's identity is unlocked, say) is never read.
The bytes are hashed a second time as they are decrypted
(:meth:`PayloadParts.reader`), so that a part written to in place in
between is caught too (:meth:`PartReader.changed_part`).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from airlock.bundles.bundle._streams import CHUNK
from airlock.bundles.errors import IntegrityError, MediaError
from airlock.bundles.models._envelope import PayloadPart

COPY_AGAIN = "the copy is incomplete or altered; copy the bundle from the original media again"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class PayloadParts:
    """Open payload parts, in order; closed by :func:`read_payload` or :meth:`close`.

    Attributes:
        names: The part names, in order.
        signed: The signed size and SHA-256 of each part (None: not checked,
            see :func:`open_parts`).
        files: The open files, in order (read them through :meth:`reader`).
    """

    def __init__(
        self, names: list[str], files: list[io.FileIO], signed: list[PayloadPart] | None
    ) -> None:
        self.names = names
        self.signed = signed
        self.files = files

    def reader(self) -> PartReader:
        """A stream over every part from its first byte (the descriptors are rewound)."""
        if not self.files:
            raise MediaError("no payload part given")
        for handle in self.files:
            handle.seek(0)
        return PartReader(self)

    def close(self) -> None:
        """Closes every part (idempotent)."""
        for handle in self.files:
            handle.close()

    def __enter__(self) -> PayloadParts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PartReader(io.RawIOBase):
    """Reads the parts one after the other as one stream, hashing what it hands out."""

    def __init__(self, parts: PayloadParts) -> None:
        super().__init__()
        self._parts = parts
        self._files = parts.files
        self._digests = [hashlib.sha256() for _ in self._files]
        self._sizes = [0] * len(self._files)
        self._index = 0

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fills ``buffer`` from the current part, moving to the next one at its end."""
        while self._index < len(self._files):
            count = self._files[self._index].readinto(buffer)
            if count:
                self._digests[self._index].update(memoryview(buffer)[:count])
                self._sizes[self._index] += count
                return count
            self._index += 1
        return 0

    def changed_part(self) -> str | None:
        """The first part whose bytes differ from the signed ones, or None.

        Reads (and hashes) whatever the consumer left unread, so the answer
        covers every byte of every part. Always None for unchecked parts.

        Raises:
            MediaError: a part cannot be read any more.
        """
        if self._parts.signed is None:
            return None
        buf = bytearray(CHUNK)
        try:
            while self.readinto(buf):
                pass
        except OSError as exc:
            raise MediaError(f"cannot read the payload parts again: {exc.strerror}") from None
        for part, size, digest in zip(self._parts.signed, self._sizes, self._digests, strict=True):
            if size != part.size or digest.hexdigest() != part.sha256:
                return part.name
        return None


def changed_error(name: str) -> IntegrityError:
    """The error for a part whose bytes changed after they were checked."""
    return IntegrityError(
        f"payload part {name} changed on the medium while it was being imported",
        hint="something wrote to the bundle during the import; " + COPY_AGAIN,
    )


def check_parts(bundle_dir: Path, parts: Sequence[PayloadPart]) -> PayloadParts:
    """Checks the payload parts on the media against the signed envelope; keeps them open.

    Every listed part must be a regular file (not a link) with the signed size
    (all sizes are checked first, as that is cheap) and SHA-256; no other
    ``payload.*`` file may be present. Give the result to ``read_payload``
    (which closes it), or close it.

    Args:
        bundle_dir: The bundle directory.
        parts: The parts the signed envelope lists, in order.

    Returns:
        The open parts, in order, positioned nowhere in particular.

    Raises:
        MediaError: a part is missing, unreadable or not a regular file, or an
            unlisted payload file is present.
        IntegrityError: a size or hash differs from the signed one.
    """
    bundle_dir = Path(bundle_dir)
    listed = {part.name for part in parts}
    try:
        present = sorted(p.name for p in bundle_dir.iterdir() if p.name.startswith("payload."))
    except OSError as exc:
        raise MediaError(f"cannot read the bundle directory {bundle_dir}: {exc.strerror}") from None
    extra = [name for name in present if name not in listed]
    if extra:
        raise MediaError(
            f"unexpected file {extra[0]} in the bundle: the signed envelope does not list it",
            hint="files of different bundles are mixed; copy this bundle into an empty folder",
        )
    opened = PayloadParts([part.name for part in parts], [], list(parts))
    try:
        for part in parts:
            handle = _open_part(bundle_dir, part.name)
            opened.files.append(handle)
            size = os.fstat(handle.fileno()).st_size
            if size != part.size:
                raise IntegrityError(
                    f"payload part {part.name} has {size} bytes, "
                    f"the signed envelope says {part.size}",
                    hint=COPY_AGAIN,
                )
        reader = opened.reader()
        changed = reader.changed_part()
        if changed is not None:
            raise IntegrityError(
                f"payload part {changed} does not match the SHA-256 in the signed envelope",
                hint=COPY_AGAIN,
            )
    except BaseException:
        opened.close()
        raise
    return opened


def open_parts(paths: Sequence[Path]) -> PayloadParts:
    """Opens local payload files that need no check against an envelope (tools, tests).

    Raises:
        MediaError: a file is missing, unreadable or not a regular file.
    """
    opened = PayloadParts([Path(p).name for p in paths], [], None)
    try:
        for path in paths:
            opened.files.append(_open_part(Path(path).parent, Path(path).name))
    except BaseException:
        opened.close()
        raise
    return opened


def _open_part(directory: Path, name: str) -> io.FileIO:
    """Opens one part without following a link or waiting on a FIFO; it must be a regular file."""
    path = directory / name
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise MediaError(
            f"payload part {name} is missing from {directory}",
            hint="copy every payload.* file of the bundle",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(name) from None
        raise MediaError(
            f"cannot open payload part {name}: {exc.strerror}",
            hint="check that the medium is mounted and readable, then retry",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(name)
        os.set_blocking(fd, True)
        return io.FileIO(fd, "r", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _not_regular(name: str) -> MediaError:
    return MediaError(
        f"payload part {name} is not a regular file",
        hint="copy the bundle's payload.* files as plain files (not links, devices or FIFOs) "
        "into an empty folder and import that folder",
    )
