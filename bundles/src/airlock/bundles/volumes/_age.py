"""The age layer of volumes, on :mod:`airlock.bundles.agestream`.

A volume is a standard age file to the series' recipients: its header (with the
16-byte payload nonce) and STREAM segments of 64 KiB sealed with ChaCha20-Poly1305,
sealed and opened a run of segments per call (each AEAD call releases the GIL).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream._header import header_end, hkdf, parse_header
from airlock.bundles.agestream._keys import parse_recipient
from airlock.bundles.agestream._stream import (
    CIPHER_CHUNK,
    NONCE_BYTES,
    TAG_BYTES,
    decrypt_chunks,
    encrypt_chunks,
    header_size,
)
from airlock.bundles.agestream._writer import start_file
from airlock.bundles.agestream._x25519 import unwrap
from airlock.bundles.errors import DecryptionError, UsageError
from airlock.bundles.volumes._cipher import (
    AuthenticationFailed,
    Geometry,
    Opener,
    Sealer,
)


class AgeSealer:
    """Seals one volume under a fresh file key."""

    tag = TAG_BYTES

    def __init__(self, recipients: Sequence[bytes]) -> None:
        self.header, key = start_file(list(recipients))
        self._cipher = ChaCha20Poly1305(key)

    def seal_run(self, index: int, plain: memoryview, out: memoryview, final: bool) -> int:
        """Seals segments ``index…`` (see :class:`._cipher.Sealer`)."""
        return encrypt_chunks(self._cipher, index, plain, out, final=final)


class AgeEncryption:
    """Volumes sealed to ``recipients`` (``age1…``)."""

    encrypted = True

    def __init__(self, recipients: Sequence[str]) -> None:
        if not recipients:
            raise UsageError("no age recipient to encrypt the volumes to")
        self._keys = [parse_recipient(r) for r in recipients]
        self.geometry = Geometry(header_size(len(self._keys)), TAG_BYTES)

    def sealer(self) -> Sealer:
        """A sealer with a new file key."""
        return AgeSealer(self._keys)


class AgeOpener:
    """Opens one volume with its payload key."""

    tag = TAG_BYTES

    def __init__(self, key: bytes, header_size: int) -> None:
        self._cipher = ChaCha20Poly1305(key)
        self.header_size = header_size

    def open_run(self, index: int, cipher: memoryview, out: memoryview, final: bool) -> int:
        """Opens segments ``index…`` (see :class:`._cipher.Opener`)."""
        try:
            return decrypt_chunks(self._cipher, index, cipher, out, final=final)
        except DecryptionError as exc:
            failed = _failed_segment(self._cipher, index, cipher, out, final)
            raise AuthenticationFailed(exc.message, failed) from None


def _failed_segment(
    cipher: ChaCha20Poly1305, index: int, data: memoryview, out: memoryview, final: bool
) -> int:
    """Which segment of a run fails (the run is opened again, one segment at a time)."""
    count = -(-len(data) // CIPHER_CHUNK)
    for i in range(count):
        piece = data[i * CIPHER_CHUNK : (i + 1) * CIPHER_CHUNK]
        target = out[i * (CIPHER_CHUNK - TAG_BYTES) :]
        try:
            decrypt_chunks(cipher, index + i, piece, target, final=final and i == count - 1)
        except DecryptionError:
            return i
    return 0


class AgeDecryption:
    """Volumes opened with the site's X25519 identities (raw 32-byte scalars)."""

    encrypted = True

    def __init__(self, identities: Sequence[bytes]) -> None:
        if not identities:
            raise UsageError("no age identity to decrypt the volumes with")
        self._identities = [bytes(i) for i in identities]

    def header_length(self, head: bytes) -> int | None:
        """Length of the header and payload nonce at the start of ``head`` (None: more bytes)."""
        try:
            end = header_end(head, at_eof=False)
        except DecryptionError as exc:
            raise AuthenticationFailed(exc.message) from None
        if end is None or end + NONCE_BYTES > len(head):
            return None
        return end + NONCE_BYTES

    def opener(self, header: bytes) -> Opener:
        """Authenticates the header with the identities and derives the payload key."""
        try:
            parsed = parse_header(header[:-NONCE_BYTES])
            file_key = unwrap(parsed.stanzas, self._identities)
        except DecryptionError as exc:
            raise AuthenticationFailed(exc.message) from None
        if file_key is None:
            raise AuthenticationFailed("it is not encrypted to this site's age identity")
        if not parsed.verify(file_key):
            raise AuthenticationFailed("its age header does not authenticate (header MAC)")
        key = hkdf(file_key, header[-NONCE_BYTES:], b"payload")
        return AgeOpener(key, len(header))
