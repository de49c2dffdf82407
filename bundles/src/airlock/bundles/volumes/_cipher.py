"""The encryption layer under a volume: plain (site policy: no encryption) or age.

The volume code sees a file as a header followed by fixed-size segments: age's
STREAM (64 KiB of plaintext per segment, a 16-byte tag each, the last segment
flagged final), or, without encryption, the plaintext itself cut at the same
boundaries (no header, no tags). Knowing where every segment sits is what lets a
reader resume a volume in the middle and a rebuild decode only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SEGMENT = 64 << 10
"""Plaintext bytes per segment (age's STREAM chunk size)."""


class AuthenticationFailed(Exception):
    """A segment (or the header) does not authenticate: the bytes are not those written.

    Attributes:
        failed_at: The segment that failed, counted from the run's first (-1: the header).
    """

    def __init__(self, message: str, failed_at: int = -1) -> None:
        super().__init__(message)
        self.failed_at = failed_at


class Sealer(Protocol):
    """Encrypts one volume, runs of segments at a time (write side)."""

    header: bytes
    tag: int

    def seal_run(self, index: int, plain: memoryview, out: memoryview, final: bool) -> int:
        """Seals segments ``index…`` from ``plain`` into ``out``; returns the bytes written.

        ``plain`` is whole segments, except with ``final`` (the run ends the file).
        """


class Opener(Protocol):
    """Decrypts one volume whose header was read, runs of segments at a time (read side)."""

    header_size: int
    tag: int

    def open_run(self, index: int, cipher: memoryview, out: memoryview, final: bool) -> int:
        """Opens segments ``index…`` into ``out``; returns plaintext bytes.

        Raises:
            AuthenticationFailed: a segment does not authenticate (``failed_at`` says
                which; the ones before it in ``out`` are authentic).
        """


def segments(plain_size: int) -> int:
    """Number of segments of a plaintext (age: at least one, even when empty)."""
    return max(1, -(-plain_size // SEGMENT))


@dataclass(frozen=True)
class Geometry:
    """Where a volume's segments sit in its file.

    Attributes:
        header_size: Bytes before segment 0.
        tag: Bytes each segment adds.
    """

    header_size: int
    tag: int

    @property
    def cipher_segment(self) -> int:
        """File bytes of a full segment."""
        return SEGMENT + self.tag

    def file_size(self, plain_size: int) -> int:
        """Size of the file holding ``plain_size`` bytes of plaintext."""
        return self.header_size + plain_size + self.tag * segments(plain_size)

    def segment_offset(self, index: int) -> int:
        """File offset of segment ``index``."""
        return self.header_size + index * self.cipher_segment

    def plain_capacity(self, file_size: int) -> int:
        """The most plaintext a file of ``file_size`` bytes can hold (-1: not even an empty one)."""
        room = file_size - self.header_size - self.tag
        if room < 0:
            return -1
        full, rest = divmod(room + self.tag, self.cipher_segment)
        return full * SEGMENT + max(0, rest - self.tag)


class PlainSealer:
    """No encryption: segments are the plaintext itself."""

    header = b""
    tag = 0

    def seal_run(self, index: int, plain: memoryview, out: memoryview, final: bool) -> int:
        """Copies ``plain`` to ``out``."""
        out[: len(plain)] = plain
        return len(plain)


class PlainOpener:
    """No encryption: segments are the plaintext itself."""

    header_size = 0
    tag = 0

    def open_run(self, index: int, cipher: memoryview, out: memoryview, final: bool) -> int:
        """Copies ``cipher`` to ``out``."""
        out[: len(cipher)] = cipher
        return len(cipher)


PLAIN = Geometry(header_size=0, tag=0)


class Encryption(Protocol):
    """How a series is sealed: what every volume's file looks like, and a sealer per volume."""

    encrypted: bool
    geometry: Geometry

    def sealer(self) -> Sealer:
        """A fresh sealer (a new file key) for one volume file."""


class PlainEncryption:
    """The site policy that takes no encryption: volumes are plain tars."""

    encrypted = False
    geometry = PLAIN

    def sealer(self) -> Sealer:
        """The copying sealer."""
        return PlainSealer()


class Decryption(Protocol):
    """How volumes are opened: plain, or age with the site's identities."""

    encrypted: bool

    def header_length(self, head: bytes) -> int | None:
        """Length of the header at the start of ``head`` (None: more bytes needed).

        Raises:
            AuthenticationFailed: not a header this reader can open.
        """

    def opener(self, header: bytes) -> Opener:
        """An opener for a file that starts with ``header`` (the payload nonce included).

        Raises:
            AuthenticationFailed: the header does not open with these identities.
        """


class PlainDecryption:
    """Volumes are plain tars."""

    encrypted = False

    def header_length(self, head: bytes) -> int | None:
        """Plain volumes have no header."""
        return 0

    def opener(self, header: bytes) -> Opener:
        """The copying opener."""
        return PlainOpener()
