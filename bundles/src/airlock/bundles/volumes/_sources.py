"""Where a pass's file bytes come from (reading thread): a volume file, or a zfec rebuild.

* :func:`read_volume` reads one data volume file: the header and the first MiB,
  then only the ranges that hold entries still to verify (a resumed volume starts
  where it stopped, with no re-read of what was verified), then its last segment.
* :func:`rebuild_series` reads ``k`` intact volumes of a series block by block and
  decodes the missing data volumes with zfec; present volumes that still have
  entries to verify are checked from the same reads (one pass over the media).
  Parity inputs are hashed from start to end, so a parity volume that lies is named.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zfec

from airlock.bundles.volumes._cipher import SEGMENT, Decryption, Geometry
from airlock.bundles.volumes._feed import CipherFeed
from airlock.bundles.volumes._pipeline import Handoff
from airlock.bundles.volumes._readplan import VolumeInfo
from airlock.bundles.volumes._split import SplitHasher
from airlock.bundles.volumes._state import Bits

READ = 16 * (SEGMENT + 16)
MERGE_GAP = 1 << 20
"""Skipped ranges shorter than this are read through (a seek saves nothing there)."""


def plain_runs(info: VolumeInfo, todo: Bits) -> list[tuple[int, int]]:
    """Plaintext ranges holding the entries to verify (and the end of the archive)."""
    runs: list[tuple[int, int]] = []
    for j, entry in enumerate(info.entries):
        if todo[j]:
            if runs and runs[-1][1] == entry.offset:
                runs[-1] = (runs[-1][0], entry.end)
            else:
                runs.append((entry.offset, entry.end))
    last = info.entries[-1].end if info.entries else 0
    runs.append((max(last, info.plain_size - 1), info.plain_size))
    return runs


def file_ranges(geometry: Geometry, runs: list[tuple[int, int]], size: int) -> list[list[int]]:
    """File ranges covering whole segments of ``runs``, merged across small gaps."""
    out: list[list[int]] = []
    for start, end in runs:
        first = geometry.segment_offset(start // SEGMENT)
        last = min(size, geometry.segment_offset(-(-end // SEGMENT)))
        if out and first - out[-1][1] < MERGE_GAP:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return out


def _pread_full(fd: int, view: memoryview, offset: int) -> int:
    got = 0
    while got < len(view):
        count = os.preadv(fd, [view[got:]], offset + got)
        if count <= 0:
            break
        got += count
    return got


def read_volume(
    handoff: Handoff,
    key: object,
    path: Path,
    info: VolumeInfo,
    todo: Bits,
    decryption: Decryption,
    counter: Callable[[int], None] | None = None,
    split: SplitHasher | None = None,
) -> None:
    """Feeds the parts of a volume file that hold entries to verify (see the module docstring)."""
    feed = CipherFeed(key, decryption, info.plain_size, handoff, split)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        feed.fail(f"cannot be opened: {exc.strerror}")
        feed.end(False)
        return
    try:
        size = os.fstat(fd).st_size
        if size != info.record.size:
            handoff.send(
                ("damage", key, f"it has {size:,} bytes, the envelope says {info.record.size:,}")
            )
        buffer = bytearray(READ)
        view = memoryview(buffer)
        got = _pread_full(fd, view[: min(READ, size)], 0)
        if counter:
            counter(got)
        feed.feed(0, view[:got])
        truncated = False
        if feed.geometry is not None and not feed.failed:
            done = got
            for start, end in file_ranges(feed.geometry, plain_runs(info, todo), size):
                pos = max(start, done)
                while pos < end and not feed.failed:
                    want = min(READ, end - pos)
                    count = _pread_full(fd, view[:want], pos)
                    if counter:
                        counter(count)
                    feed.feed(pos, view[:count])
                    pos += count
                    if count < want:
                        break
                done = max(done, pos)
            expected = feed.geometry.file_size(info.plain_size)
            truncated = size < expected
            if size > expected:
                handoff.send(("damage", key, "data after the end of its age stream"))
        feed.end(truncated)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Share:
    """A rebuild input: a volume file and its zfec share number.

    Share numbers: data volume v is v-1, parity volume p is k+p-1.
    """

    number: int
    path: Path
    size: int
    parity_name: str | None = None


@dataclass(frozen=True)
class Target:
    """A data volume a rebuild pass verifies: from its own file (an input) or decoded."""

    key: object
    info: VolumeInfo
    todo: Bits
    decoded: bool


def rebuild_series(
    handoff: Handoff,
    k: int,
    total: int,
    block: int,
    longest: int,
    shares: list[Share],
    targets: list[Target],
    decryption: Decryption,
    counter: Callable[[int], None] | None = None,
    splits: list[SplitHasher] | None = None,
) -> None:
    """Reads ``shares`` block by block, decodes, and feeds every target (module docstring)."""
    decoder = zfec.Decoder(k, total)
    fds = [os.open(s.path, os.O_RDONLY | os.O_CLOEXEC) for s in shares]
    try:
        buffers = [bytearray(block) for _ in shares]
        hashes = {s.parity_name: hashlib.sha256() for s in shares if s.parity_name}
        hashers: list[SplitHasher | None] = list(splits) if splits else [None] * len(targets)
        feeds = [
            CipherFeed(t.key, decryption, t.info.plain_size, handoff, s)
            for t, s in zip(targets, hashers, strict=True)
        ]
        needed: set[int] | None = None
        decode = any(t.decoded for t in targets)
        for number in range(-(-longest // block)):
            offset = number * block
            length = min(block, longest - offset)
            wanted = needed is None or number in needed
            for share, fd, buffer in zip(shares, fds, buffers, strict=True):
                if not (wanted or share.parity_name):
                    continue
                valid = max(0, min(length, share.size - offset))
                view = memoryview(buffer)
                got = _pread_full(fd, view[:valid], offset) if valid else 0
                if counter:
                    counter(got)
                if got < length:
                    view[got:length] = bytes(length - got)
                if share.parity_name:
                    hashes[share.parity_name].update(view[:got])
            if not wanted:
                continue
            views = [memoryview(b)[:length] for b in buffers]
            blocks = decoder.decode(list(views), [s.number for s in shares]) if decode else []
            by_number = {s.number: v for s, v in zip(shares, views, strict=True)}
            for target, feed in zip(targets, feeds, strict=True):
                index = target.info.record.number - 1
                data = memoryview(blocks[index]) if target.decoded else by_number[index]
                valid = max(0, min(length, target.info.record.size - offset))
                feed.feed(offset, data[:valid])
                feed.flush()  # one pool buffer per feed at a time: never all held at once
            if needed is None:
                needed = _needed_blocks(targets, feeds, block)
        for feed in feeds:
            feed.end(False)
        for name, digest in hashes.items():
            handoff.send(("parity", name, digest.hexdigest()))
    finally:
        for fd in fds:
            os.close(fd)


def _needed_blocks(targets: list[Target], feeds: list[CipherFeed], block: int) -> set[int]:
    needed: set[int] = set()
    for target, feed in zip(targets, feeds, strict=True):
        if feed.geometry is None:
            continue
        size = target.info.record.size
        for start, end in file_ranges(feed.geometry, plain_runs(target.info, target.todo), size):
            needed.update(range(start // block, -(-end // block)))
    return needed
