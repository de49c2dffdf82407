"""The streaming payload layer of bundle format v1 (the public API).

A payload is a tar — metadata entries first, then content-addressed blobs —
encrypted in the standard age format to the site (``payload.age``), or a plain
tar (``payload.tar``) when encryption is off. It is readable by the stock
``age -d`` and ``tar``.

* :func:`write_payload` (hub) streams tar -> age -> disk and returns the parts
  with their size and SHA-256 for the signed envelope.
* :func:`check_parts` (spoke) checks the parts on the media against the signed
  envelope before anything is decrypted.
* :func:`read_payload` (spoke) streams disk -> age -> strict tar checks: links,
  devices, odd names, duplicates, unlisted files, sizes above the signed ones and
  metadata after blobs are refused; blobs are hashed as they are written. On any
  failure everything it wrote is removed. Decryption runs in its own thread
  (pyrage holds the GIL) while this one hashes and writes, so both cores work.

Memory stays flat (1 MiB buffers) whatever the blob sizes.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from airlock.bundles.errors import DecryptionError, IntegrityError, MediaError, UsageError
from airlock.bundles.models import PayloadPart
from airlock.bundles.payload_unpack import PayloadLimits, Unpacker
from airlock.bundles.payload_writer import BlobSource, write_payload
from airlock.bundles.streams import (
    AGE_READ_BUFFER,
    CHUNK,
    ConcatReader,
    Stage,
    hash_file,
    is_broken_pipe,
    open_pipe,
)

__all__ = [
    "BlobSource",
    "PayloadLimits",
    "UnpackedPayload",
    "check_parts",
    "hash_file",
    "read_payload",
    "write_payload",
]

_COPY_AGAIN = "the copy is incomplete or altered; copy the bundle from the original media again"


@dataclass
class UnpackedPayload:
    """What :func:`read_payload` verified and wrote.

    Attributes:
        metadata: Archive name -> bytes, in archive order.
        blobs: SHA-256 hex -> path of the verified file under ``dest_dir``.
    """

    metadata: dict[str, bytes]
    blobs: dict[str, Path]


def read_payload(
    parts: list[Path],
    identities: list[Any] | None,
    dest_dir: Path,
    on_metadata: Callable[[dict[str, bytes]], Mapping[str, int]],
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008 (frozen, immutable)
) -> UnpackedPayload:
    """Decrypts and unpacks a payload under the strict bundle rules.

    ``on_metadata`` is called exactly once, with every metadata entry, when the
    first blob arrives (or at the end of an archive without blobs); it verifies
    the metadata and returns the blobs allowed: SHA-256 hex -> signed length.
    Every allowed blob must then appear, with exactly that length and hash.

    Args:
        parts: ``payload.age`` (or ``payload.tar``) parts in order, already checked
            against the signed envelope (:func:`check_parts`).
        identities: pyrage ``x25519.Identity`` objects; None for a plain tar.
        dest_dir: An existing, empty directory on the filesystem of the final store;
            blobs go to ``dest_dir/blobs/sha256/<hex>``.
        on_metadata: The metadata verifier (see above); its exceptions propagate unchanged.
        limits: Memory bounds for metadata, entries and headers.

    Returns:
        The metadata and the paths of the verified blobs. Only now may they be trusted.

    Raises:
        DecryptionError: wrong identity, or damaged or truncated ciphertext.
        UnsafeArchiveError: an entry breaks the archive rules.
        IntegrityError: a blob's size or hash differs from the signed one, or it is missing.
        MediaError: a part cannot be read, or the archive is truncated.
        UsageError: ``dest_dir`` is not an empty directory.
    """
    dest_dir = Path(dest_dir)
    _check_dest(dest_dir)
    unpacker = Unpacker(dest_dir, on_metadata, limits)
    try:
        source = _open_parts(parts)
        if identities is None:
            with source:
                unpacker.run(source)
        else:
            _decrypt_and_unpack(source, identities, unpacker)
    except BaseException:
        unpacker.cleanup()
        raise
    return UnpackedPayload(metadata=unpacker.metadata, blobs=dict(unpacker.blobs))


def check_parts(bundle_dir: Path, parts: list[PayloadPart]) -> list[Path]:
    """Checks the payload parts on the media against the signed envelope.

    Every listed part must exist with the signed size (all sizes are checked first,
    as that is cheap) and SHA-256; no other ``payload.*`` file may be present.

    Args:
        bundle_dir: The bundle directory.
        parts: The parts the signed envelope lists, in order.

    Returns:
        The paths of the parts, in order.

    Raises:
        MediaError: a part is missing or unreadable, or an unlisted payload file is present.
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
    paths = [bundle_dir / part.name for part in parts]
    for part, path in zip(parts, paths, strict=True):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise MediaError(
                f"payload part {part.name} is missing from {bundle_dir}",
                hint="copy every payload.* file of the bundle",
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(f"payload part {part.name} is not a regular file")
        if info.st_size != part.size:
            raise IntegrityError(
                f"payload part {part.name} has {info.st_size} bytes, "
                f"the signed envelope says {part.size}",
                hint=_COPY_AGAIN,
            )
    for part, path in zip(parts, paths, strict=True):
        try:
            size, digest = hash_file(path)
        except OSError as exc:
            raise MediaError(f"cannot read payload part {part.name}: {exc.strerror}") from None
        if size != part.size or digest != part.sha256:
            raise IntegrityError(
                f"payload part {part.name} does not match the SHA-256 in the signed envelope",
                hint=_COPY_AGAIN,
            )
    return paths


def _check_dest(dest_dir: Path) -> None:
    if not dest_dir.is_dir() or any(dest_dir.iterdir()):
        raise UsageError(f"{dest_dir} must be an existing, empty directory to unpack into")


def _open_parts(parts: list[Path]) -> ConcatReader:
    if not parts:
        raise MediaError("no payload part given")
    try:
        return ConcatReader(parts)
    except OSError as exc:
        raise MediaError(
            f"cannot open payload part {exc.filename}: {exc.strerror}",
            hint="copy every payload.* file of the bundle",
        ) from None


def _decrypt_and_unpack(source: ConcatReader, identities: list[Any], unpacker: Unpacker) -> None:
    """Runs pyrage in a thread that feeds a pipe; this thread unpacks from the pipe."""
    read_fd, write_fd = open_pipe()
    stage = Stage("payload-decrypt", lambda: _decrypt(source, write_fd, identities))
    stage.start()
    unpack_error: BaseException | None = None
    try:
        with io.FileIO(read_fd, "r") as pipe:  # closing it stops the decryptor (broken pipe)
            unpacker.run(pipe)
    except BaseException as exc:
        unpack_error = exc
    stage.join()
    if unpack_error is not None and (
        unpack_error is unpacker.callback_error or not isinstance(unpack_error, Exception)
    ):
        raise unpack_error  # on_metadata's verdict (or an interrupt) goes through unchanged
    if stage.error is not None and not is_broken_pipe(stage.error):
        raise _decryption_error(stage.error) from None
    if unpack_error is not None:
        raise unpack_error
    if stage.error is not None:
        raise DecryptionError("decryption of the payload stopped unexpectedly")


def _decrypt(source: ConcatReader, write_fd: int, identities: list[Any]) -> None:
    # pyrage reads and writes 8 KiB at a time, holding the GIL: see AGE_READ_BUFFER.
    with (
        io.BufferedReader(source, AGE_READ_BUFFER) as reader,
        open(write_fd, "wb", buffering=CHUNK) as writer,
    ):
        pyrage.decrypt_io(reader, writer, identities)


def _decryption_error(exc: BaseException) -> DecryptionError:
    """Maps pyrage's failures (its messages carry no key material) to DecryptionError."""
    text = str(exc)
    if isinstance(exc, pyrage.DecryptError) and "No matching keys" in text:
        return DecryptionError(
            "the payload is not encrypted to this site's age identity",
            hint="check that the bundle was exported for this site and the identity is right",
        )
    if text == "decryption error":  # decrypt_io raises it as a plain OSError
        return DecryptionError(
            "the payload ciphertext is damaged or truncated (age authentication failed)",
            hint=_COPY_AGAIN,
        )
    if isinstance(exc, pyrage.DecryptError | OSError):
        return DecryptionError(
            f"the payload cannot be decrypted: {text}",
            hint="the payload is damaged or not an age file; " + _COPY_AGAIN,
        )
    return DecryptionError(f"decryption of the payload failed: {type(exc).__name__}")
