"""Reading age files: :class:`AgeReader`, a seekable raw stream of authenticated plaintext.

Opening parses and authenticates the header (trying every X25519 stanza with every
identity), then checks the payload's shape from the file size and opens the final
chunk, so a truncated or extended file is refused before any plaintext is returned
and ``plaintext_size`` is authentic from the start (the spec's rule for seeking from
the end). Reads open whole chunks: straight into the caller's buffer when it takes
whole chunks (up to 1 MiB per ``pread`` and ``decrypt_into`` run), else through a
one-chunk cache. Each chunk's final flag comes from its position, so reordered,
dropped or appended chunks fail authentication.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream._header import header_end, hkdf, parse_header
from airlock.bundles.agestream._stream import (
    CIPHER_CHUNK,
    DAMAGED_HINT,
    NONCE_BYTES,
    PLAIN_CHUNK,
    TAG_BYTES,
    damaged,
    decrypt_chunks,
)
from airlock.bundles.agestream._x25519 import unwrap
from airlock.bundles.errors import DecryptionError, UsageError

BATCH_CHUNKS = 16
_HEADER_STEP = 4096
_WRONG_IDENTITY_HINT = (
    "check that the file was encrypted to this site's age recipient (the identity's "
    "public key) and that the identity file given is this site's"
)


def _fd_size(fd: int) -> int:
    """The size of a regular file or a block device, leaving the fd's position as it was."""
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    here = os.lseek(fd, 0, os.SEEK_CUR)  # a pipe raises ESPIPE here
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.lseek(fd, here, os.SEEK_SET)


class _Source:
    """Positional reads from a raw fd (``pread``) or a seekable binary file object."""

    def __init__(self, src: int | BinaryIO) -> None:
        self.src = src
        try:
            if isinstance(src, int):
                self.size = _fd_size(src)
            else:
                self.size = src.seek(0, os.SEEK_END)
        except (OSError, io.UnsupportedOperation) as exc:
            raise UsageError(
                "AgeReader needs a seekable file (not a pipe)", "decrypt from a file"
            ) from exc

    def read_into(self, buf: memoryview, offset: int) -> None:
        """Fills ``buf`` from ``offset``; a short file is damage (it changed under us)."""
        done = 0
        while done < len(buf):
            part = buf[done:]
            if isinstance(self.src, int):
                got = os.preadv(self.src, [part], offset + done)
            else:
                self.src.seek(offset + done)
                got = self.src.readinto(part) or 0  # type: ignore[attr-defined]
            if got <= 0:
                raise damaged(offset + done, "the file ended early (was it changed?)")
            done += got


class AgeReader(io.RawIOBase):
    """The authenticated plaintext of an age file, seekable, read chunk by chunk.

    ``src`` (a raw fd or a seekable binary file object) is not closed by ``close()``;
    a file object is moved by every read (share it with no one). Not thread-safe:
    for two threads use two readers (on an fd they do not disturb each other).

    Attributes:
        plaintext_size: The plaintext length, authenticated by the final chunk at open.
        payload_offset: Where the first sealed chunk starts in the file.
        chunks: How many STREAM chunks the file holds.

    Raises:
        DecryptionError: not encrypted to any of ``identities`` ("not encrypted to this
            identity"), a malformed or unauthentic header, or a payload whose size or
            final chunk does not authenticate ("damaged or truncated … at byte offset N").
        UsageError: no identities, or ``src`` is not seekable.
    """

    def __init__(self, src: int | BinaryIO, identities: Sequence[bytes], *, name: str = "") -> None:
        super().__init__()
        if not identities:
            raise UsageError("no age identity given to decrypt with")
        self._name = name
        self._src = _Source(src)
        try:
            self._cipher = self._open_header(identities)
            self._check_shape()
        except DecryptionError as exc:
            raise self._named(exc) from None
        self._pos = 0
        self._cached = -1
        self._chunk = bytearray(PLAIN_CHUNK)
        self._sealed = bytearray(BATCH_CHUNKS * CIPHER_CHUNK)
        self._load(self.chunks - 1)  # the final chunk authenticates the size

    def _named(self, exc: DecryptionError) -> DecryptionError:
        if not self._name:
            return exc
        return DecryptionError(f"{self._name}: {exc.message}", exc.hint)

    def _open_header(self, identities: Sequence[bytes]) -> ChaCha20Poly1305:
        data = bytearray()
        while (end := header_end(bytes(data), len(data) >= self._src.size)) is None:
            step = min(max(_HEADER_STEP, len(data)), self._src.size - len(data))
            part = bytearray(step)
            self._src.read_into(memoryview(part), len(data))
            data += part
        header = parse_header(bytes(data[:end]))
        file_key = unwrap(header.stanzas, identities)
        if file_key is None:
            raise DecryptionError("not encrypted to this identity", _WRONG_IDENTITY_HINT)
        if not header.verify(file_key):
            raise DecryptionError(
                "damaged (age header authentication failed): the header MAC does not match",
                DAMAGED_HINT,
            )
        if self._src.size < end + NONCE_BYTES:
            raise damaged(end, "the file ends inside the payload nonce")
        nonce = bytearray(NONCE_BYTES)
        self._src.read_into(memoryview(nonce), end)
        self.payload_offset = end + NONCE_BYTES
        return ChaCha20Poly1305(hkdf(file_key, bytes(nonce), b"payload"))

    def _check_shape(self) -> None:
        payload = self._src.size - self.payload_offset
        if payload == 0:
            raise damaged(self._src.size, "no payload chunk (the file is truncated)")
        self.chunks = -(-payload // CIPHER_CHUNK)
        self._last_sealed = payload - (self.chunks - 1) * CIPHER_CHUNK
        if self._last_sealed < TAG_BYTES:
            raise damaged(self._src.size - self._last_sealed, "the final chunk is cut short")
        self.plaintext_size = payload - TAG_BYTES * self.chunks

    def _sealed_len(self, index: int) -> int:
        return self._last_sealed if index == self.chunks - 1 else CIPHER_CHUNK

    def _open_run(self, index: int, count: int, dst: memoryview) -> int:
        """Reads and opens chunks ``index .. index+count-1`` into ``dst``."""
        size = (count - 1) * CIPHER_CHUNK + self._sealed_len(index + count - 1)
        offset = self.payload_offset + index * CIPHER_CHUNK
        sealed = memoryview(self._sealed)[:size]
        try:
            self._src.read_into(sealed, offset)
            final = index + count == self.chunks
            return decrypt_chunks(self._cipher, index, sealed, dst, final=final, offset=offset)
        except DecryptionError as exc:
            raise self._named(exc) from None

    def _load(self, index: int) -> None:
        if self._cached != index:
            self._cached = -1
            self._open_run(index, 1, memoryview(self._chunk))
            self._cached = index

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fills ``buffer`` with authenticated plaintext from the current position."""
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        view = memoryview(buffer).cast("B")
        if self._pos >= self.plaintext_size or not view:
            return 0
        index, within = divmod(self._pos, PLAIN_CHUNK)
        if within == 0:
            count = min(BATCH_CHUNKS, self.chunks - 1 - index, len(view) // PLAIN_CHUNK)
            plain = count * PLAIN_CHUNK
            last_plain = self.plaintext_size - (self.chunks - 1) * PLAIN_CHUNK
            room = len(view) - plain
            if count < BATCH_CHUNKS and index + count == self.chunks - 1 and room >= last_plain:
                count, plain = count + 1, plain + last_plain
            if count:
                self._open_run(index, count, view[:plain])
                self._pos += plain
                return plain
        self._load(index)
        end = min(PLAIN_CHUNK, self.plaintext_size - index * PLAIN_CHUNK)
        got = min(len(view), end - within)
        view[:got] = memoryview(self._chunk)[within : within + got]
        self._pos += got
        return got

    def seek_chunk(self, index: int) -> None:
        """Moves to the start of chunk ``index`` (plaintext offset ``index * 65536``)."""
        if not 0 <= index * PLAIN_CHUNK <= self.plaintext_size:
            raise ValueError(f"chunk {index} is outside the file ({self.chunks} chunks)")
        self._pos = index * PLAIN_CHUNK

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Moves to a plaintext offset (SEEK_SET, SEEK_CUR or SEEK_END); returns it."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.plaintext_size}
        if whence not in base or base[whence] + offset < 0:
            raise ValueError("invalid seek")
        self._pos = base[whence] + offset
        return self._pos

    def tell(self) -> int:
        """The current plaintext offset."""
        return self._pos

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True
