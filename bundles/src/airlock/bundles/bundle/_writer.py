"""Writes a bundle payload: a tar streamed through age into ``payload.age``.

Three stages run at once, joined by pipes with 1 MiB buffers, so memory stays
flat whatever the blob sizes::

    tar thread ──pipe──> encrypt thread (pyrage) ──pipe──> this thread
    headers + sendfile   encrypt_io                        sha256 + write

Without recipients the middle stage is left out and the plain tar is written
as ``payload.tar``. The output goes to a temporary file in the output
directory, is fsynced, and is promoted with ``os.replace`` only on success.

The tar is POSIX pax (ustar headers, plus a pax header only when a name or a
size does not fit), readable by the stock ``age -d`` and ``tar``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from airlock.bundles.atomic import fsync_dir
from airlock.bundles.bundle._names import (
    METADATA_NAME,
    PAYLOAD_ENCRYPTED,
    PAYLOAD_PLAINTEXT,
    is_sha256_hex,
    shown,
)
from airlock.bundles.bundle._streams import (
    AGE_READ_BUFFER,
    CHUNK,
    DurableWriter,
    Stage,
    is_broken_pipe,
    open_pipe,
    write_all,
)
from airlock.bundles.errors import (
    AirlockError,
    IntegrityError,
    MediaError,
    NotFoundError,
    UsageError,
)
from airlock.bundles.models._envelope import PayloadPart
from airlock.bundles.tuf._repo import archive_blob_name

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True)
class BlobSource:
    """A content-addressed file to put in the payload.

    Attributes:
        sha256: Hex digest; the archive name is ``tufrepo.archive_blob_name(sha256)``.
        path: The file on disk holding the bytes.
        length: Its size in bytes (the signed TUF length).
    """

    sha256: str
    path: Path
    length: int


def write_payload(
    out_dir: Path,
    metadata: list[tuple[str, bytes]],
    blobs: list[BlobSource],
    recipients: list[str] | None,
) -> list[PayloadPart]:
    """Streams a tar (metadata entries first, then blobs) through age into ``out_dir``.

    Args:
        out_dir: Bundle directory (created if missing); receives ``payload.age``,
            or ``payload.tar`` when ``recipients`` is None.
        metadata: ``(archive name, bytes)`` in order; names are ``metadata/<repo>/<file>``.
        blobs: Content-addressed files, in order.
        recipients: age X25519 recipients (``age1...``); None writes a plain tar.

    Returns:
        The payload parts, with the size and SHA-256 of the bytes written.

    Raises:
        UsageError: invalid names, duplicates, or an invalid or empty recipient list.
        NotFoundError: a blob file does not exist.
        IntegrityError: a blob file does not have its declared length.
        MediaError: the payload cannot be written (disk full, permissions).
    """
    _check_entries(metadata, blobs)
    parsed = _parse_recipients(recipients)
    name = PAYLOAD_PLAINTEXT if parsed is None else PAYLOAD_ENCRYPTED
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
        tmp = Path(tmp_name)
    except OSError as exc:
        raise MediaError(
            f"cannot create the payload in {out_dir}: {exc.strerror}",
            hint="check that the output directory is writable",
        ) from None
    try:
        with io.FileIO(fd, "w"):
            os.fchmod(fd, 0o644)
            out = DurableWriter(fd)
            digest = _run_pipeline(out, metadata, blobs, parsed)
            out.sync()
        tmp.replace(out_dir / name)
        fsync_dir(out_dir)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return [PayloadPart(name=name, size=out.size, sha256=digest)]


def _check_entries(metadata: list[tuple[str, bytes]], blobs: list[BlobSource]) -> None:
    seen: set[str] = set()
    for entry_name, _ in metadata:
        if not METADATA_NAME.fullmatch(entry_name):
            raise UsageError(
                f"invalid payload metadata name {shown(entry_name)}",
                hint="metadata names are metadata/<repository>/<file> with safe segments",
            )
        if entry_name in seen:
            raise UsageError(f"payload metadata {shown(entry_name)} is listed twice")
        seen.add(entry_name)
    for blob in blobs:
        if not is_sha256_hex(blob.sha256) or blob.length < 0:
            raise UsageError(f"invalid blob hash or length: {shown(blob.sha256)}")
        if blob.sha256 in seen:
            raise UsageError(f"blob {blob.sha256} is listed twice")
        seen.add(blob.sha256)
        try:
            info = Path(blob.path).stat()
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {blob.sha256} is missing: {blob.path} does not exist",
                hint="the blob store is incomplete; re-import the model version",
            ) from None
        if not stat.S_ISREG(info.st_mode) or info.st_size != blob.length:
            raise IntegrityError(
                f"blob {blob.sha256} at {blob.path} has {info.st_size} bytes, "
                f"expected {blob.length}",
                hint="the blob store is damaged; re-import the model version",
            )


def _parse_recipients(recipients: list[str] | None) -> list[Any] | None:
    if recipients is None:
        return None
    if not recipients:
        raise UsageError(
            "no age recipient given for an encrypted payload",
            hint="register the site's age recipient, or turn encryption off explicitly",
        )
    parsed = []
    for text in recipients:
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(text))
        except Exception:
            raise UsageError(
                f"{text[:80]!r} is not a valid age X25519 recipient",
                hint="it starts with 'age1'; copy it from the site identity",
            ) from None
    return parsed


def _run_pipeline(
    out: DurableWriter,
    metadata: list[tuple[str, bytes]],
    blobs: list[BlobSource],
    recipients: list[Any] | None,
) -> str:
    tar_read, tar_write = open_pipe()
    tar_stage = Stage("payload-tar", lambda: _produce_tar(tar_write, metadata, blobs))
    stages = [tar_stage]
    if recipients is None:
        source = tar_read
        encrypt_stage = None
    else:
        source, age_write = open_pipe()
        encrypt_stage = Stage("payload-age", lambda: _encrypt(tar_read, age_write, recipients))
        stages.append(encrypt_stage)
    for stage in stages:
        stage.start()
    sink_error: BaseException | None = None
    digest = hashlib.sha256()
    try:
        with io.FileIO(source, "r") as reader:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while count := reader.readinto(view):
                digest.update(view[:count])
                out.write(view[:count])
    except BaseException as exc:  # closing `source` above stops the other stages
        sink_error = exc
    for stage in stages:
        stage.join()
    _raise_first(tar_stage.error, sink_error, encrypt_stage.error if encrypt_stage else None)
    return digest.hexdigest()


def _raise_first(
    tar_error: BaseException | None,
    sink_error: BaseException | None,
    encrypt_error: BaseException | None,
) -> None:
    """Raises the cause of a pipeline failure (broken pipes are only consequences)."""
    if tar_error is not None and not is_broken_pipe(tar_error):
        if isinstance(tar_error, OSError):
            raise MediaError(
                f"cannot read a blob for the payload: {tar_error}",
                hint="check the blob store",
            ) from tar_error
        raise tar_error
    if sink_error is not None:
        if isinstance(sink_error, OSError):
            raise MediaError(
                f"cannot write the payload: {sink_error.strerror or sink_error}",
                hint="check free space and permissions of the output directory",
            ) from sink_error
        raise sink_error
    if encrypt_error is not None and not is_broken_pipe(encrypt_error):
        raise AirlockError(f"payload encryption failed: {encrypt_error}") from encrypt_error
    if tar_error is not None or encrypt_error is not None:
        raise AirlockError("the payload pipeline stopped unexpectedly")


def _encrypt(tar_read: int, age_write: int, recipients: list[Any]) -> None:
    """Stage 2: encrypts the tar stream (pyrage holds the GIL: see AGE_READ_BUFFER)."""
    with (
        open(tar_read, "rb", buffering=AGE_READ_BUFFER) as reader,
        open(age_write, "wb", buffering=CHUNK) as writer,
    ):
        pyrage.encrypt_io(reader, writer, recipients)


def _produce_tar(fd: int, metadata: list[tuple[str, bytes]], blobs: list[BlobSource]) -> None:
    """Stage 1: writes the tar to ``fd`` (blob data goes file -> pipe with sendfile)."""
    try:
        position = 0
        for entry_name, data in metadata:
            position += _write_entry_header(fd, entry_name, len(data))
            write_all(fd, data)
            position += len(data) + _pad(fd, len(data))
        for blob in blobs:
            position += _write_entry_header(fd, archive_blob_name(blob.sha256), blob.length)
            _send_blob(fd, blob)
            position += blob.length + _pad(fd, blob.length)
        end = position + 2 * _BLOCK
        end += -end % _RECORD
        write_all(fd, bytes(end - position))
    finally:
        os.close(fd)


def _write_entry_header(fd: int, entry_name: str, size: int) -> int:
    info = tarfile.TarInfo(entry_name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    header = info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
    write_all(fd, header)
    return len(header)


def _pad(fd: int, size: int) -> int:
    padding = -size % _BLOCK
    if padding:
        write_all(fd, bytes(padding))
    return padding


def _send_blob(fd: int, blob: BlobSource) -> None:
    with open(blob.path, "rb", buffering=0) as src:
        if os.fstat(src.fileno()).st_size != blob.length:
            raise IntegrityError(f"blob {blob.sha256} at {blob.path} changed size while exporting")
        offset = 0
        while offset < blob.length:
            count = min(blob.length - offset, 1 << 30)
            try:
                sent = os.sendfile(fd, src.fileno(), offset, count)
            except OSError as exc:
                if offset or exc.errno not in _NO_SENDFILE:
                    raise
                _copy_blob(fd, src, blob)
                return
            if sent == 0:
                raise IntegrityError(f"blob {blob.sha256} at {blob.path} is shorter than signed")
            offset += sent


_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}  # fall back to read/write


def _copy_blob(fd: int, src: io.FileIO, blob: BlobSource) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    remaining = blob.length
    while remaining:
        count = src.readinto(view[: min(CHUNK, remaining)])
        if not count:
            raise IntegrityError(f"blob {blob.sha256} at {blob.path} is shorter than signed")
        write_all(fd, view[:count])
        remaining -= count
