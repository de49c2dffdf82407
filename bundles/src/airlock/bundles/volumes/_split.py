"""Half of the chunk hashing on the reading thread, so that both threads carry the same load.

Reading a volume, one thread reads and decrypts, the other checks and writes; hashing
is the biggest cost and would all fall on the second. :class:`SplitHasher` lets the
reading thread hash the data of every other chunk entry from the plaintext it has just
decrypted (before handing it over), and leaves the digests for the checking thread,
which compares them with the index exactly as it does its own. Both see the same
bytes, in the same order; an entry interrupted by a gap (a skipped or lost segment)
gets no digest and is not verified.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from airlock.bundles.volumes._format import Entry


class SplitHasher:
    """Hashes the data of the entries ``mine`` selects, from plaintext pieces given in order."""

    def __init__(self, entries: Sequence[Entry], mine: Callable[[int], bool]) -> None:
        self._entries = entries
        self._starts = [e.data_offset for e in entries]
        self.mine = mine
        self._partial: dict[int, tuple[Any, int]] = {}
        self.digests: dict[int, str] = {}

    def take(self, offset: int, view: memoryview) -> None:
        """Hashes what plaintext ``[offset, offset + len(view))`` holds of the selected entries."""
        entries = self._entries
        end = offset + len(view)
        j = max(0, bisect_right(self._starts, offset) - 1)
        while j < len(entries) and entries[j].data_offset < end:
            entry = entries[j]
            first, last = entry.data_offset, entry.data_offset + entry.length
            if last > offset and self.mine(j):
                start, stop = max(first, offset), min(last, end)
                if start == first:
                    digest = hashlib.sha256()
                else:
                    partial = self._partial.pop(j, None)
                    if partial is None or partial[1] != start:  # a gap: no digest for it
                        j += 1
                        continue
                    digest = partial[0]
                digest.update(view[start - offset : stop - offset])
                if stop == last:
                    self.digests[j] = digest.hexdigest()
                else:
                    self._partial[j] = (digest, stop)
            j += 1
