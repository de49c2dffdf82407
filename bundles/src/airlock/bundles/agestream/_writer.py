"""Writing age files: the header for a fresh file key, and the streaming :class:`AgeWriter`.

:class:`AgeWriter` takes any amount of plaintext per ``write`` and seals it straight
from the caller's buffer into a 1 MiB ciphertext buffer (no copy of whole chunks),
holding back the last chunk (at most 64 KiB) until it knows whether more follows:
a file whose length is a multiple of 64 KiB ends with a full final chunk, as age
itself writes it. Memory: one 64 KiB chunk and one ~1 MiB output buffer.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from types import TracebackType
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream._header import build_header, hkdf
from airlock.bundles.agestream._keys import parse_recipient
from airlock.bundles.agestream._stream import (
    CIPHER_CHUNK,
    NONCE_BYTES,
    PLAIN_CHUNK,
    encrypt_chunks,
)
from airlock.bundles.agestream._x25519 import FILE_KEY_BYTES, wrap
from airlock.bundles.errors import UsageError

BATCH_CHUNKS = 16
"""Chunks sealed per output write (16 x 64 KiB = 1 MiB of plaintext)."""


def start_file(recipients: Sequence[str | bytes]) -> tuple[bytes, bytes]:
    """A fresh file key wrapped to every recipient.

    Args:
        recipients: ``age1…`` strings or raw 32-byte X25519 public keys.

    Returns:
        ``(head, payload_key)``: ``head`` is the header and the 16-byte payload nonce
        (exactly ``header_size(len(recipients))`` bytes), to be written first;
        ``payload_key`` is for ``ChaCha20Poly1305`` and :func:`encrypt_chunks`.
        The file key itself is not kept.

    Raises:
        UsageError: no recipients, or one that is not a valid X25519 recipient.
    """
    if not recipients:
        raise UsageError("an age file needs at least one recipient")
    keys = [parse_recipient(r) if isinstance(r, str) else bytes(r) for r in recipients]
    for key in keys:
        if len(key) != 32:
            raise UsageError(f"an age recipient is 32 bytes, not {len(key)}")
    file_key = secrets.token_bytes(FILE_KEY_BYTES)
    header = build_header(file_key, [wrap(file_key, key) for key in keys])
    nonce = secrets.token_bytes(NONCE_BYTES)
    return header + nonce, hkdf(file_key, nonce, b"payload")


def write_all(out: int | BinaryIO, data: memoryview | bytes) -> None:
    """Writes all of ``data`` to a raw file descriptor or a binary file object."""
    view = memoryview(data)
    while view:
        written = os.write(out, view) if isinstance(out, int) else out.write(view)
        if not written:
            raise OSError("the output accepted no bytes")
        view = view[written:]


class AgeWriter:
    """Encrypts a stream to age recipients, written to ``out`` as it goes.

    ``out`` is a raw file descriptor or a binary file object; it is not closed.
    ``close()`` seals the final chunk: without it the output is a truncated age file
    that every reader refuses (leaving the ``with`` block by an exception does not
    finish the file, on purpose).

    Attributes:
        size: Ciphertext bytes written to ``out`` so far; after ``close()``, exactly
            ``encrypted_size(plain_size, len(recipients))``.
        plain_size: Plaintext bytes accepted so far.
    """

    def __init__(self, out: int | BinaryIO, recipients: Sequence[str | bytes]) -> None:
        head, key = start_file(recipients)
        self._out = out
        self._cipher = ChaCha20Poly1305(key)
        self._counter = 0
        self._pending = bytearray(PLAIN_CHUNK)
        self._fill = 0
        self._buffer = bytearray(BATCH_CHUNKS * CIPHER_CHUNK)
        self._used = 0
        self._closed = False
        self.plain_size = 0
        self.size = 0
        self._emit(head)

    def _emit(self, data: memoryview | bytes) -> None:
        write_all(self._out, data)
        self.size += len(data)

    def _flush(self) -> None:
        if self._used:
            self._emit(memoryview(self._buffer)[: self._used])
            self._used = 0

    def _seal(self, chunks: memoryview, final: bool = False) -> None:
        """Seals whole chunks (or, with ``final``, the last one) into the output buffer."""
        while True:
            room = BATCH_CHUNKS - self._used // CIPHER_CHUNK
            take = chunks[: room * PLAIN_CHUNK]
            rest = chunks[len(take) :]
            out = memoryview(self._buffer)[self._used :]
            is_final = final and not rest
            self._used += encrypt_chunks(self._cipher, self._counter, take, out, final=is_final)
            self._counter += -(-len(take) // PLAIN_CHUNK)
            if self._used >= BATCH_CHUNKS * CIPHER_CHUNK or is_final:
                self._flush()
            if not rest:
                return
            chunks = rest

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypts all of ``data`` (any bytes-like object); returns its length."""
        if self._closed:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        if self._fill and view:
            take = min(PLAIN_CHUNK - self._fill, len(view))
            self._pending[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if view:  # the held-back chunk is full and more follows: it is not the last
                self._seal(memoryview(self._pending))
                self._fill = 0
        if len(view) > PLAIN_CHUNK:
            whole = (len(view) - 1) // PLAIN_CHUNK * PLAIN_CHUNK
            self._seal(view[:whole])
            view = view[whole:]
        if view:
            self._pending[: len(view)] = view
            self._fill = len(view)
        self.plain_size += size
        return size

    def close(self) -> None:
        """Seals the final chunk and writes what is buffered (does not close ``out``)."""
        if self._closed:
            return
        self._closed = True
        self._seal(memoryview(self._pending)[: self._fill], final=True)
        self._pending = self._buffer = bytearray()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has finished the file."""
        return self._closed

    def __enter__(self) -> AgeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
