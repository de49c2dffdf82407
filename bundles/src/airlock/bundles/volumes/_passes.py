"""The passes of an assembly over one series: read the volume files, or rebuild with zfec.

Each pass is one two-thread pipeline: the reading thread feeds file bytes (from
the volume files or decoded by zfec) through decryption; this thread checks the
plaintext and writes verified chunks (:class:`._checker.EntryChecker`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from airlock.bundles.models._volumes import VolumeRecord
from airlock.bundles.progress import Progress
from airlock.bundles.volumes._checker import EntryChecker
from airlock.bundles.volumes._cipher import SEGMENT, Decryption
from airlock.bundles.volumes._pipeline import Handoff, run_pipeline
from airlock.bundles.volumes._readplan import SeriesInfo, VolumeInfo
from airlock.bundles.volumes._sources import Share, Target, read_volume, rebuild_series
from airlock.bundles.volumes._split import SplitHasher
from airlock.bundles.volumes._state import Bits, State
from airlock.bundles.volumes._status import not_enough
from airlock.bundles.volumes._writer import work_block


class Host(Protocol):
    """What the passes use of the assembler."""

    found: dict[str, Path]
    failed: set[str]
    state: State
    parity_records: dict[str, VolumeRecord]
    parity_ok: dict[str, bool]

    def needy(self, info: VolumeInfo) -> bool: ...
    def todo(self, info: VolumeInfo) -> Bits: ...
    def checker(
        self,
        info: VolumeInfo,
        todo: Bits,
        rebuilt: bool = False,
        split: SplitHasher | None = None,
    ) -> EntryChecker: ...
    def damaged(self, info: VolumeInfo | VolumeRecord, text: str) -> None: ...
    def damage_of(self, record: VolumeRecord) -> list[str]: ...


BUFFERS = 6


class Passes:
    """Runs the passes that complete each series (see the module docstring)."""

    def __init__(
        self,
        assembler: Host,
        decryption: Decryption,
        progress: Progress,
        on_read: Callable[[int], None] | None,
    ) -> None:
        self._a = assembler
        self._decryption = decryption
        self._progress = progress
        self._on_read = on_read
        self._checkers: dict[str, EntryChecker] = {}
        self._handoff: Handoff | None = None
        self._announced: str | None = None
        self._read: set[str] = set()
        self.splits: dict[str, SplitHasher] = {}

    def _size_ok(self, name: str, size: int) -> bool:
        path = self._a.found.get(name)
        if path is None:
            return False
        try:
            return path.stat().st_size == size
        except OSError:
            return False

    def complete_series(self, series: SeriesInfo) -> str | None:
        """Verifies (and rebuilds) what the series holds for the wanted files.

        Returns:
            None when done, else the text saying what is missing for this series.
        """
        a = self._a
        k = series.layout.data
        progress_mark: tuple[int, int] | None = None
        for _ in range(2 * (k + series.layout.parity) + 2):
            needy = [i for i in series.data if a.needy(i)]
            if not needy:
                return None
            unread = [
                i for i in needy if i.record.name in a.found and i.record.name not in self._read
            ]
            lost = [i for i in needy if not self._usable(i)]
            shares = self._shares(series, needy)
            if lost and len(shares) >= k:
                mark = (sum(v.done.count() for v in a.state.volumes.values()), len(a.failed))
                if mark == progress_mark:
                    break
                progress_mark = mark
                self._rebuild(series, lost, shares[:k])
            elif unread:
                self._read_files(unread)
            else:
                break
        return self._problem(series)

    def _usable(self, info: VolumeInfo) -> bool:
        name = info.record.name
        return name not in self._a.failed and self._size_ok(name, info.record.size)

    def _shares(self, series: SeriesInfo, needy: list[VolumeInfo]) -> list[Share]:
        """Usable inputs, the volumes needed anyway first, then other data, then parity."""
        order = needy + [i for i in series.data if i not in needy]
        shares = [
            Share(i.record.number - 1, self._a.found[i.record.name], i.record.size)
            for i in order
            if self._usable(i)
        ]
        k = series.layout.data
        for record in series.parity:
            name = record.name
            if name not in self._a.failed and self._size_ok(name, record.size):
                shares.append(Share(k + record.number - 1, self._a.found[name], record.size, name))
        return shares

    def _problem(self, series: SeriesInfo) -> str:
        a = self._a
        k = series.layout.data
        records = [i.record for i in series.data] + list(series.parity)
        usable = len(self._shares(series, []))
        candidates = [
            r
            for r in records
            if r.name not in a.found or r.name in a.failed or not self._size_ok(r.name, r.size)
        ]
        missing = [r for r in records if r.name not in a.found]
        damaged = []
        for r in records:
            if r.name in a.found and r not in missing and r in candidates:
                texts = a.damage_of(r)
                text = texts[0] if texts else f"{r.label}: damaged (its size or SHA-256 is wrong)"
                damaged.append((r, text))
        return not_enough(series.layout.id, k, min(usable, k), candidates, missing, damaged)

    # -- pipelines ---------------------------------------------------------------------------

    def _start(self, targets: list[tuple[VolumeInfo, Bits, bool]], share: int) -> Handoff:
        """Checkers for a pass; the reading thread hashes one entry in ``share`` of each."""
        self._checkers = {}
        self.splits = {}
        for info, todo, from_file in targets:
            split = SplitHasher(info.entries, _one_in(share, todo))
            self.splits[info.record.name] = split
            self._checkers[info.record.name] = self._a.checker(info, todo, not from_file, split)
            if from_file:  # a new reading of the file: its old damage may be gone
                self._a.state.volumes[info.record.name].damage.clear()
        self._handoff = Handoff(buffers=BUFFERS, size=16 * SEGMENT)
        return self._handoff

    def _read_files(self, infos: list[VolumeInfo]) -> None:
        jobs = [(info, self._a.todo(info)) for info in infos]
        handoff = self._start([(info, todo, True) for info, todo in jobs], share=2)
        self._read.update(info.record.name for info in infos)
        decryption, on_read, found = self._decryption, self._on_read, self._a.found
        splits = self.splits

        def produce(h: Handoff) -> None:
            for info, todo in jobs:
                path: Path = found[info.record.name]
                split = splits[info.record.name]
                read_volume(h, info.record.name, path, info, todo, decryption, on_read, split)

        run_pipeline("volumes-read", handoff, produce, self._consume)

    def _rebuild(self, series: SeriesInfo, lost: list[VolumeInfo], shares: list[Share]) -> None:
        k = series.layout.data
        inputs = {s.number for s in shares}
        targets = [Target(i.record.name, i, self._a.todo(i), True) for i in lost]
        for info in series.data:
            if info.record.number - 1 in inputs and info not in lost:
                todo = self._a.todo(info)
                if todo.count():
                    targets.append(Target(info.record.name, info, todo, False))
                    self._read.add(info.record.name)
        # the reading thread also decodes here: it takes a quarter of the hashing, not half
        handoff = self._start([(t.info, t.todo, not t.decoded) for t in targets], share=4)
        splits = [self.splits[t.info.record.name] for t in targets]
        for info in lost:
            self._a.state.volumes[info.record.name].rebuilt = True
        total = k + series.layout.parity
        block = work_block(series.layout.stripe, total)
        longest = max(i.record.size for i in series.data)
        decryption, on_read = self._decryption, self._on_read

        def produce(h: Handoff) -> None:
            rebuild_series(
                h, k, total, block, longest, shares, targets, decryption, on_read, splits
            )

        run_pipeline("volumes-rebuild", handoff, produce, self._consume)

    def _consume(self, message: Any) -> None:
        kind, key = message[0], message[1]
        if kind == "parity":
            record = self._a.parity_records[key]
            ok = message[2] == record.sha256
            self._a.parity_ok[key] = ok
            if not ok:
                self._a.damaged(record, f"{record.label}: its SHA-256 is not the one signed")
            return
        checker = self._checkers[key]
        if kind == "plain":
            _, _, offset, buffer, count = message
            if key != self._announced:
                self._announced = key
                record = checker.info.record
                self._progress.volume(record.name, record.number, record.of)
            checker.feed(offset, memoryview(buffer)[:count])
            assert self._handoff is not None
            self._handoff.give_back(buffer)
        elif kind == "lost":
            checker.lost(message[2], message[3], message[4])
        elif kind == "damage":
            self._a.damaged(checker.info, f"{checker.info.record.label}: {message[2]}")
        elif kind == "end" and message[2] is not None:
            checker.finish(message[2])


def _one_in(share: int, todo: Bits) -> Callable[[int], bool]:
    """Selects one entry to verify in ``share`` (those the reading thread hashes)."""
    return lambda j: j % share == 0 and todo[j]
