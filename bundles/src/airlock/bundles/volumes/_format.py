"""The plaintext of a data volume, byte for byte: a POSIX ustar archive fixed by the layout.

A data volume's plaintext is::

    airlock-volume.json   header block + canonical JSON {"format", "series", "volume", "of"}
    <name>                one regular-file entry per chunk, in layout order
    …
    end of archive        two zero blocks, then zeros up to a whole 10 KiB record

Every header is a ustar block with mode 0644, mtime 0, uid/gid 0 and no user or
group names, so the reader knows each expected header byte for byte and compares
whole blocks (:func:`entry_header`). Entry names are keyed: the first 16 bytes of
HMAC-SHA256(name key, raw chunk SHA-256), in hex (:func:`chunk_name`), so that the
media do not reveal which known file they carry.
"""

from __future__ import annotations

import hashlib
import hmac
import tarfile
from dataclasses import dataclass
from functools import lru_cache

from airlock.bundles.canonical import canonical_bytes

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
VOLUME_FORMAT = "airlock-volume/2"
VOLUME_ENTRY = "airlock-volume.json"
NAME_KEY_BYTES = 32
HEAD_BYTES = 2 * BLOCK
"""The ``airlock-volume.json`` entry: its header and one block of JSON (always under 512 bytes)."""


def chunk_name(name_key: bytes, chunk_sha256: str) -> str:
    """The on-media name of a chunk: 32 hex digits of HMAC-SHA256(name_key, raw SHA-256)."""
    return hmac.digest(name_key, bytes.fromhex(chunk_sha256), "sha256")[:16].hex()


def padded(size: int) -> int:
    """``size`` rounded up to whole tar blocks."""
    return size + (-size % BLOCK)


def entry_span(size: int) -> int:
    """Bytes an entry of ``size`` data bytes takes in the archive (header, data, padding)."""
    return BLOCK + padded(size)


def archive_size(entries_bytes: int) -> int:
    """Size of a whole volume plaintext whose chunk entries take ``entries_bytes``."""
    end = HEAD_BYTES + entries_bytes + 2 * BLOCK
    return end + (-end % RECORD)


@lru_cache(maxsize=4096)
def entry_header(name: str, size: int) -> bytes:
    """The exact 512-byte ustar header the writer emits for an entry."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    header = info.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii", errors="strict")
    assert len(header) == BLOCK
    return header


def volume_json(series: str, number: int, of: int) -> bytes:
    """The canonical JSON of ``airlock-volume.json``."""
    doc = {"format": VOLUME_FORMAT, "series": series, "volume": number, "of": of}
    return canonical_bytes(doc)


def volume_head(series: str, number: int, of: int) -> bytes:
    """The first :data:`HEAD_BYTES` of a volume's plaintext."""
    data = volume_json(series, number, of)
    head = entry_header(VOLUME_ENTRY, len(data)) + data
    return head + bytes(HEAD_BYTES - len(head))


def header_name(block: bytes | memoryview) -> str:
    """The name a (possibly foreign) ustar header claims, for messages only."""
    raw = bytes(block[:100]).split(b"\0", 1)[0]
    return raw.decode("ascii", "replace")[:100]


@dataclass(frozen=True)
class Entry:
    """One chunk entry of a volume, where it sits in the plaintext.

    Attributes:
        name: The keyed name (32 hex).
        sha256: The chunk's SHA-256 (hex).
        length: Its data bytes.
        offset: Plaintext offset of its header block (its data follows).
    """

    name: str
    sha256: str
    length: int
    offset: int

    @property
    def data_offset(self) -> int:
        """Plaintext offset of its first data byte."""
        return self.offset + BLOCK

    @property
    def end(self) -> int:
        """Plaintext offset just after its padding (the next header)."""
        return self.offset + entry_span(self.length)


def lay_out(chunks: list[tuple[str, str, int]]) -> tuple[list[Entry], int]:
    """Places ``(name, sha256, length)`` chunks in a volume; returns entries and plaintext size."""
    entries: list[Entry] = []
    offset = HEAD_BYTES
    for name, sha, length in chunks:
        entries.append(Entry(name, sha, length, offset))
        offset += entry_span(length)
    return entries, archive_size(offset - HEAD_BYTES)


def sha256_hex(data: bytes | memoryview) -> str:
    """SHA-256 (hex) of ``data``."""
    return hashlib.sha256(data).hexdigest()
