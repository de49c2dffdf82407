"""The streaming payload layer of bundle format v1 (the public API).

A payload is a tar — metadata entries first, then content-addressed blobs —
encrypted in the standard age format to the site (``payload.age``), or a plain
tar (``payload.tar``) when encryption is off. It is readable by the stock
``age -d`` and ``tar``.

* :func:`write_payload` (hub) streams tar -> age -> disk and returns the parts
  with their size and SHA-256 for the signed envelope.
* :func:`check_parts` (spoke) checks the parts on the media against the signed
  envelope before anything is decrypted, and keeps them open
  (:mod:`airlock.bundles.bundle._parts`): what is decrypted is what was hashed.
* :func:`read_payload` (spoke) streams those open parts -> age -> strict tar checks: links,
  devices, odd names, duplicates, unlisted files, sizes above the signed ones and
  metadata after blobs are refused; blobs are hashed as they are written. On any
  failure everything it wrote is removed. Decryption runs in its own thread
  (pyrage holds the GIL) while this one hashes and writes, so both cores work.

Memory stays flat (1 MiB buffers) whatever the blob sizes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from airlock.bundles.bundle._parts import (
    COPY_AGAIN,
    PartReader,
    PayloadParts,
    changed_error,
    check_parts,
    open_parts,
)
from airlock.bundles.bundle._streams import (
    AGE_READ_BUFFER,
    CHUNK,
    Stage,
    hash_file,
    is_broken_pipe,
    open_pipe,
)
from airlock.bundles.bundle._unpack import PayloadLimits, Unpacker
from airlock.bundles.bundle._writer import BlobSource, write_payload
from airlock.bundles.errors import DecryptionError, UsageError

__all__ = [
    "BlobSource",
    "PayloadLimits",
    "PayloadParts",
    "UnpackedPayload",
    "check_parts",
    "hash_file",
    "open_parts",
    "read_payload",
    "write_payload",
]

_COPY_AGAIN = COPY_AGAIN


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
    parts: PayloadParts,
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

    The parts are read through the descriptors :func:`check_parts` opened (never
    by path again) and hashed once more as they are decrypted: if their bytes
    changed since the check, that is the error, whatever else failed.

    Args:
        parts: The open ``payload.age`` (or ``payload.tar``) parts in order, from
            :func:`check_parts` (or :func:`open_parts` for unchecked local files).
            They are closed when this returns or fails.
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
        IntegrityError: a blob's size or hash differs from the signed one, or it is
            missing; or a part changed on the medium after it was checked.
        MediaError: a part cannot be read, or the archive is truncated.
        StorageError: the blobs cannot be written (disk full, read-only, no permission).
        UsageError: ``dest_dir`` is not an empty directory.
    """
    with parts:
        dest_dir = Path(dest_dir)
        _check_dest(dest_dir)
        unpacker = Unpacker(dest_dir, on_metadata, limits)
        source = parts.reader()
        try:
            try:
                if identities is None:
                    unpacker.run(source)
                else:
                    _decrypt_and_unpack(source, identities, unpacker)
            except Exception:
                changed = source.changed_part()  # bytes swapped in place: blame the medium
                if changed is not None:
                    raise changed_error(changed) from None
                raise
            changed = source.changed_part()
            if changed is not None:
                raise changed_error(changed)
        except BaseException:
            unpacker.cleanup()
            raise
    return UnpackedPayload(metadata=unpacker.metadata, blobs=dict(unpacker.blobs))


def _check_dest(dest_dir: Path) -> None:
    if not dest_dir.is_dir() or any(dest_dir.iterdir()):
        raise UsageError(f"{dest_dir} must be an existing, empty directory to unpack into")


def _decrypt_and_unpack(source: PartReader, identities: list[Any], unpacker: Unpacker) -> None:
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


def _decrypt(source: PartReader, write_fd: int, identities: list[Any]) -> None:
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
