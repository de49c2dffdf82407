"""Checks a data volume's plaintext against the layout, entry by entry, and writes verified chunks.

The plaintext arrives in pieces (whole 64 KiB segments, in order, possibly with
gaps where the reader skipped verified entries or a segment failed to
authenticate). Every byte must be what the layout says: the ``airlock-volume.json``
entry and every tar header are compared block for block with the ones the writer
emits, padding and the end of the archive must be zeros, and every chunk's
SHA-256 must be its index's. A chunk a wanted file still needs is written (pwrite)
into its ``.part`` file(s) while it is hashed; it counts only once its hash matched.
"""

from __future__ import annotations

import hashlib
import json
import os
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Protocol

from airlock.bundles.volumes._format import BLOCK, HEAD_BYTES, entry_header, header_name
from airlock.bundles.volumes._readplan import VolumeInfo
from airlock.bundles.volumes._split import SplitHasher
from airlock.bundles.volumes._state import Bits

_ZEROS = bytes(1 << 20)


class Sink(Protocol):
    """What the checker reports to (the assembler)."""

    def needs(self, name: str) -> list[tuple[int, int]] | None:
        """``(fd, file offset)`` of every place chunk ``name`` must be written, None if none."""

    def verified(self, info: VolumeInfo, entry: int, nbytes: int) -> None:
        """Entry ``entry`` of the volume was verified (its chunk written where needed)."""

    def damaged(self, info: VolumeInfo, text: str) -> None:
        """The volume is damaged; ``text`` says where and how."""


class Structural(Exception):
    """The volume is not what the layout says here: nothing further in it is read."""


class EntryChecker:
    """Checks one data volume's plaintext (see the module docstring)."""

    def __init__(
        self,
        info: VolumeInfo,
        todo: Bits,
        sink: Sink,
        describe: Callable[[str], str],
        rebuilt: bool = False,
        split: SplitHasher | None = None,
    ) -> None:
        self.info = info
        self._split = split
        self._suffix = " as rebuilt from parity" if rebuilt else ""
        self.todo = todo
        self._sink = sink
        self._describe = describe  # where else a foreign chunk name belongs, for messages
        self._starts = [e.offset for e in info.entries]
        self._pos = 0
        self._current: tuple[int, Any, list[tuple[int, int]] | None] | None = None
        self.stopped = False
        self.failed: set[int] = set()
        self.verified_count = 0

    def _label(self, entry: int | None = None) -> str:
        label = self.info.record.label + self._suffix
        return label if entry is None else f"{label}, chunk {entry + 1:,}"

    def _damage(self, text: str, structural: bool = False) -> None:
        self._sink.damaged(self.info, text)
        if structural:
            self.stopped = True
            self._current = None
            raise Structural(text)

    def feed(self, offset: int, view: memoryview) -> None:
        """Checks plaintext bytes ``[offset, offset + len(view))``."""
        if self.stopped:
            return
        if offset != self._pos:
            self._current = None  # a gap: the entry in progress cannot be verified
        try:
            self._process(offset, view)
        except Structural:
            return
        self._pos = offset + len(view)

    def lost(self, start: int, end: int, why: str) -> None:
        """Plaintext ``[start, end)`` could not be read (``why``): its entries are damaged."""
        if self.stopped:
            return
        if start < HEAD_BYTES:
            self._damage(f"{self._label()}: airlock-volume.json: {why}", structural=False)
            self.stopped = True
            return
        first = max(0, bisect_right(self._starts, start) - 1)
        hit = [
            j
            for j in range(first, len(self._starts))
            if self._starts[j] < end
            and self.info.entries[j].end > start
            and self.todo[j]
            and j not in self.failed
        ]
        for j in hit:
            self.failed.add(j)
        if hit:
            more = f" (and {len(hit) - 1} more)" if len(hit) > 1 else ""
            self._damage(f"{self._label(hit[0])}: {why}{more}")
        if self._current is not None and self._current[0] in hit:
            self._current = None

    def finish(self, plain_end: int) -> None:
        """The input is over; it reached plaintext offset ``plain_end``."""
        if self.stopped:
            return
        size = self.info.plain_size
        if plain_end < size:
            missing = [
                j
                for j, e in enumerate(self.info.entries)
                if self.todo[j] and e.end > plain_end and j not in self.failed
            ]
            where = f", chunk {missing[0] + 1:,} and later" if missing else ""
            self.failed.update(missing)
            self._damage(
                f"{self._label()}: truncated: the volume ends at plaintext byte {plain_end:,} "
                f"of {size:,}{where} missing"
            )
        self.stopped = True

    def _process(self, offset: int, view: memoryview) -> None:
        entries = self.info.entries
        pos, end = offset, offset + len(view)
        while pos < end:
            if pos < HEAD_BYTES:
                self._check_head(view[pos - offset : HEAD_BYTES - offset], pos)
                pos = HEAD_BYTES
                continue
            j = bisect_right(self._starts, pos) - 1
            if j < 0 or pos >= entries[j].end:  # end of archive (or between, never)
                zone_end = min(end, self.info.plain_size)
                self._zeros(view[pos - offset : zone_end - offset], None, "end of archive")
                pos = zone_end
                if pos < end:
                    self._damage(f"{self._label()}: data after the end of the archive", True)
                continue
            entry = entries[j]
            stop = min(end, entry.end)
            if not self.todo[j] or j in self.failed:
                pos = stop
                continue
            piece = view[pos - offset : stop - offset]
            pos = self._entry(j, pos, piece)
        self._pos = end

    def _check_head(self, piece: memoryview, pos: int) -> None:
        expected = self.info.head
        if pos != 0 or len(piece) < HEAD_BYTES or piece != expected:
            self._damage(f"{self._label()}: {self._head_problem(bytes(piece))}", structural=True)

    def _head_problem(self, data: bytes) -> str:
        if header_name(data) != "airlock-volume.json":
            return "its first entry is not airlock-volume.json (not an Airlock volume)"
        try:
            doc = json.loads(data[BLOCK:].rstrip(b"\0"))
            return (
                f"it says it is volume {doc['volume']} of {doc['of']} of series {doc['series']}"
                " (another volume, or a volume of another bundle)"
            )
        except (ValueError, KeyError, TypeError):
            return "its airlock-volume.json is not the one expected"

    def _entry(self, j: int, pos: int, piece: memoryview) -> int:
        entry = self.info.entries[j]
        at = pos
        if pos == entry.offset:
            header = piece[:BLOCK]
            if header != entry_header(entry.name, entry.length):
                found = header_name(header)
                if found == entry.name:
                    why = "its tar header is not the one written"
                else:
                    why = f"found entry {found[:40]!r} where {entry.name} belongs" + self._describe(
                        found
                    )
                self._damage(f"{self._label(j)}: {why}", structural=True)
            self._current = (j, hashlib.sha256(), self._sink.needs(entry.name))
            at += BLOCK
        current = self._current
        data_end = entry.data_offset + entry.length
        if current is None or current[0] != j:
            return pos + len(piece)  # joined in the middle: cannot be checked here
        if at < data_end:
            take = min(data_end, pos + len(piece)) - at
            data = piece[at - pos : at - pos + take]
            if not self._prehashed(j):
                current[1].update(data)
            if current[2]:
                for fd, file_offset in current[2]:
                    _pwrite_all(fd, data, file_offset + at - entry.data_offset)
            at += take
            if at == data_end:
                if self._prehashed(j):
                    digest = self._split.digests.pop(j, None) if self._split else None
                    if digest is None:  # the reading thread saw a gap: not verifiable here
                        return pos + len(piece)
                else:
                    digest = current[1].hexdigest()
                self._chunk_done(j, digest)
        if at < pos + len(piece):  # padding after the data
            self._zeros(piece[at - pos :], j, "tar padding")
        return pos + len(piece)

    def _prehashed(self, j: int) -> bool:
        return self._split is not None and self._split.mine(j)

    def _chunk_done(self, j: int, digest: str) -> None:
        entry = self.info.entries[j]
        if digest != entry.sha256:
            self.failed.add(j)
            self._damage(f"{self._label(j)}: SHA-256 mismatch")
            return
        self.verified_count += 1
        self._sink.verified(self.info, j, entry.length)

    def _zeros(self, piece: memoryview, j: int | None, what: str) -> None:
        if piece != _ZEROS[: len(piece)]:
            label = self._label(j) if j is not None else self._label()
            self._damage(f"{label}: {what} is not zeros")


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written
