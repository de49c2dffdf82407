"""Assembles the wanted files from data volumes: verify, resume, rebuild from parity.

:class:`Assembler` works in a private state directory that the caller creates
(mode 0700) and owns: ``files/<sha256>.part`` receive verified chunks at their
offsets, ``state.json`` says what is verified (:mod:`._state`). Plaintext is
written nowhere else. A file is handed out by :meth:`Assembler.complete` only
when every one of its chunks was verified against its signed index.

Per series, :meth:`Assembler.run` reads every data volume holding chunks still
needed; when some of them are missing it reads the present ones *and* decodes the
missing ones from parity in the same pass (:func:`._sources.rebuild_series`);
volumes found damaged are then rebuilt too, from other inputs, as long as at
least ``k`` volumes of the series are usable. Otherwise it raises
:class:`~airlock.bundles.errors.NotEnoughVolumesError` naming what is missing.
"""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airlock.bundles.atomic import fsync_dir
from airlock.bundles.errors import ConflictError, MediaError
from airlock.bundles.models._volumes import VolumeRecord
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.bundles.volumes._checker import EntryChecker
from airlock.bundles.volumes._format import chunk_name
from airlock.bundles.volumes._layers import decryption_for
from airlock.bundles.volumes._outputs import KICK_CHUNKS, start_writeback
from airlock.bundles.volumes._passes import Passes
from airlock.bundles.volumes._readplan import AssemblyPlan, SeriesInfo, VolumeInfo, resolve
from airlock.bundles.volumes._split import SplitHasher
from airlock.bundles.volumes._state import (
    Bits,
    State,
    boot_id,
    fresh_state,
    load_state,
    save_state,
)
from airlock.bundles.volumes._status import (
    DAMAGED,
    MISSING,
    PARTIAL,
    PENDING,
    UNUSED,
    VERIFIED,
    AssemblyStatus,
    VolumeStatus,
    refuse,
)

CHECKPOINT = 16 << 20
"""Verified bytes between two saves of the state (what a kill -9 may cost to re-read)."""


class Assembler:
    """Verifies volumes into a private state directory (see the module docstring).

    Args:
        plan: The verified plan (envelope records, layout, checked indexes, wanted files).
        state_dir: An existing private directory (mode 0700) for this bundle's import.
        identities: The site's age identities; None when the volumes are plain tars.
        progress: Receives phase ``"import"``, the current volume and verified bytes.
        on_read: Called with the byte count of every read from a volume file (tests).
        durable_checkpoints: fdatasync the ``.part`` files at every checkpoint (measured
            ~1.1-1.2x slower; by default they are trusted on the same boot, hashed again
            after a reboot).
        checkpoint_bytes: Verified bytes between two saves of the state.

    Raises:
        ConflictError: the state directory holds the state of another bundle.
    """

    def __init__(
        self,
        plan: AssemblyPlan,
        state_dir: Path,
        identities: Sequence[Any] | None,
        progress: Progress = NO_PROGRESS,
        on_read: Callable[[int], None] | None = None,
        durable_checkpoints: bool = False,
        checkpoint_bytes: int = CHECKPOINT,
    ) -> None:
        self._plan = plan
        self._resolved = resolve(plan)
        self._dir = Path(state_dir)
        self._files_dir = self._dir / "files"
        self._files_dir.mkdir(mode=0o700, exist_ok=True)
        self._decryption = decryption_for(identities)
        self._progress = progress
        self._on_read = on_read
        self._durable = durable_checkpoints
        self._checkpoint = checkpoint_bytes
        self.infos = {i.record.name: i for s in self._resolved.series for i in s.data}
        self.parity_records = {r.name: r for s in self._resolved.series for r in s.parity}
        sizes = {name: len(info.entries) for name, info in self.infos.items()}
        try:
            state = load_state(self._dir, self._resolved.plan_id, sizes)
        except ValueError:
            raise ConflictError(
                f"{self._dir} holds the import state of another bundle",
                hint="abandon that import first, or use another state directory",
            ) from None
        self.state: State = state or fresh_state(self._resolved.plan_id, sizes)
        self._fds: dict[str, int] = {}
        self._dirty: set[int] = set()
        self._written: dict[int, tuple[int, int]] = {}  # fd -> (chunks, lowest offset)
        self._kicks: collections.deque[tuple[int, int]] = collections.deque()  # (fd, offset)
        self._open_parts()
        self.verified_names = self._verified_names()
        if self.state.boot != boot_id():
            self._recheck_after_reboot()
        self.found: dict[str, Path] = {}
        self.failed: set[str] = set()
        self.parity_ok: dict[str, bool] = {}
        self.parity_damage: list[str] = []
        self._since = 0
        self._targets = {
            name: [(self._fds[sha], offset) for sha, offset in places]
            for name, places in self._resolved.targets.items()
        }

    def _part(self, sha: str) -> tuple[Path, Path]:
        return self._files_dir / f"{sha}.part", self._files_dir / sha

    def _open_parts(self) -> None:
        for sha in sorted(self._plan.wanted):
            length = self._plan.indexes[sha].length
            part, final = self._part(sha)
            path = final if final.exists() and not part.exists() else part
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if os.fstat(fd).st_size != length:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, length)
                self._forget_file(sha)
            self._fds[sha] = fd

    def _forget_file(self, sha: str) -> None:
        """A .part file was lost or changed: its chunks must be verified again."""
        index = self._plan.indexes[sha]
        names = {chunk_name(self._plan.layout.name_key, c) for c in index.chunks}
        for name, info in self.infos.items():
            volume = self.state.volumes[name]
            for j, entry in enumerate(info.entries):
                if entry.name in names:
                    volume.done.clear(j)
                    volume.synced.clear(j)

    def _verified_names(self) -> set[str]:
        names: set[str] = set()
        for name, info in self.infos.items():
            done = self.state.volumes[name].done
            names.update(e.name for j, e in enumerate(info.entries) if done[j])
        return names

    def _recheck_after_reboot(self) -> None:
        """Chunks verified since the last fsync are trusted only if the .part still has them."""
        for name, info in self.infos.items():
            volume = self.state.volumes[name]
            for j, entry in enumerate(info.entries):
                if volume.done[j] and not volume.synced[j] and not self._part_holds(entry):
                    volume.done.clear(j)
        self.verified_names = self._verified_names()
        self.state.boot = boot_id()
        self.sync(every_file=True)

    def _part_holds(self, entry: Any) -> bool:
        for sha, offset in self._resolved.targets.get(entry.name, []):
            data = os.pread(self._fds[sha], entry.length, offset)
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                return False
        return True

    def read_hook(self, count: int) -> None:
        """Called by the reading thread after each read: starts the write-back asked for.

        Nudging the kernel's write-back takes milliseconds of system time; the reading
        thread has more room for it than the checking thread, which hashes and writes.
        """
        while self._kicks:
            start_writeback(*self._kicks.popleft())
        if self._on_read is not None:
            self._on_read(count)

    def needs(self, name: str) -> list[tuple[int, int]] | None:
        """Where chunk ``name`` must be written, or None (not wanted, or verified already)."""
        if name in self.verified_names:
            return None
        places = self._targets.get(name)
        if places:
            for fd, offset in places:
                self._dirty.add(fd)
                count, low = self._written.get(fd, (0, offset))
                if count + 1 >= KICK_CHUNKS:
                    del self._written[fd]
                    self._kicks.append((fd, min(low, offset)))  # by the reading thread
                else:
                    self._written[fd] = (count + 1, min(low, offset))
        return places

    def verified(self, info: VolumeInfo, entry: int, nbytes: int) -> None:
        """Records a verified entry; saves the state every :data:`CHECKPOINT` bytes."""
        self.state.volumes[info.record.name].done.set(entry)
        self.verified_names.add(info.entries[entry].name)
        self._progress.advance(nbytes)
        self._since += nbytes
        if self._since >= self._checkpoint:
            self._since = 0
            if self._durable:
                for fd in self._dirty:
                    os.fdatasync(fd)
                self._dirty.clear()
            save_state(self._dir, self.state)

    def damaged(self, info: VolumeInfo | VolumeRecord, text: str) -> None:
        """Records damage of a volume (it is no rebuild input for the rest of this run)."""
        record = info.record if isinstance(info, VolumeInfo) else info
        self.failed.add(record.name)
        volume = self.state.volumes.get(record.name)
        damage = volume.damage if volume is not None else self.parity_damage
        if text not in damage and len(damage) < 50:
            damage.append(text)

    def damage_of(self, record: VolumeRecord) -> list[str]:
        """What is known to be wrong with a volume (this run, or saved for data volumes)."""
        volume = self.state.volumes.get(record.name)
        if volume is not None:
            return volume.damage
        return [d for d in self.parity_damage if d.startswith(record.label)]

    def sync(self, every_file: bool = False) -> None:
        """Makes the .part files written to (or all) and the state durable (synced = verified)."""
        for fd in list(self._fds.values()) if every_file else self._dirty:
            os.fsync(fd)
        self._dirty.clear()
        for volume in self.state.volumes.values():
            volume.synced = volume.done.copy()
        save_state(self._dir, self.state, durable=True)

    def todo(self, info: VolumeInfo) -> Bits:
        """The entries of a volume not verified yet."""
        done = self.state.volumes[info.record.name].done
        todo = Bits(len(info.entries))
        for j in range(len(info.entries)):
            if not done[j]:
                todo.set(j)
        return todo

    def needy(self, info: VolumeInfo) -> bool:
        """Whether a volume holds a chunk a wanted file still needs."""
        done = self.state.volumes[info.record.name].done
        return any(
            not done[j] and e.name not in self.verified_names and e.name in self._targets
            for j, e in enumerate(info.entries)
        )

    def checker(
        self, info: VolumeInfo, todo: Bits, rebuilt: bool = False, split: SplitHasher | None = None
    ) -> EntryChecker:
        """A checker for one volume of a pass (``rebuilt``: its bytes come from zfec)."""
        return EntryChecker(info, todo, self, self._describe, rebuilt, split)

    def _describe(self, name: str) -> str:
        for info in self.infos.values():
            if any(e.name == name for e in info.entries):
                return f" (it belongs in {info.record.label})"
        return " (a name the layout does not have)"

    def run(self, found: Mapping[str, Path]) -> None:
        """Reads, verifies and, where needed, rebuilds until every wanted chunk is verified.

        Args:
            found: Volume file name -> path, for the volumes present (any directories).

        Raises:
            NotEnoughVolumesError: some series cannot be completed; the message names
                every missing or damaged volume and how many more are needed. What was
                verified is kept (import again with more volumes).
        """
        self.found = {
            n: Path(p) for n, p in found.items() if n in self.infos or n in self.parity_records
        }
        self.failed = set()
        self.parity_ok = {}
        self.parity_damage = []
        total = sum(
            e.length
            for info in self.infos.values()
            if self.needy(info)
            for j, e in enumerate(info.entries)
            if not self.state.volumes[info.record.name].done[j]
        )
        self._progress.begin("import", total)
        problems = []
        try:
            passes = Passes(self, self._decryption, self._progress, self.read_hook)
            for series in self._resolved.series:
                problem = passes.complete_series(series)
                if problem:
                    problems.append(problem)
        finally:
            self._progress.end()
            save_state(self._dir, self.state)
        self.sync()  # a durable point: what this run verified survives a reboot as it is
        if problems:
            raise refuse(problems)

    def file_done(self, sha: str) -> bool:
        """Whether every chunk of wanted file ``sha`` is verified."""
        key = self._plan.layout.name_key
        return all(
            chunk_name(key, c) in self.verified_names for c in self._plan.indexes[sha].chunks
        )

    def status(self) -> AssemblyStatus:
        """Per volume: verified / partial / missing / damaged / pending / unused; files complete."""
        volumes = []
        for series in self._resolved.series:
            volumes += [self._data_status(info) for info in series.data]
            volumes += [self._parity_status(record, series) for record in series.parity]
        done = sum(1 for sha in self._plan.wanted if self.file_done(sha))
        return AssemblyStatus(tuple(volumes), done, len(self._plan.wanted))

    def _data_status(self, info: VolumeInfo) -> VolumeStatus:
        volume = self.state.volumes[info.record.name]
        count, total = volume.done.count(), len(info.entries)
        found = info.record.name in self.found
        if count == total:
            state = VERIFIED
        elif volume.damage and found:
            state = DAMAGED
        elif not self.needy(info):
            state = UNUSED
        elif not found and volume.rebuilt:
            state = MISSING  # (partly) rebuilt, but not whole: the medium is what is missing
        elif count:
            state = PARTIAL
        else:
            state = PENDING if found else MISSING
        damage = tuple(volume.damage) if state in (DAMAGED, MISSING) or volume.rebuilt else ()
        return VolumeStatus(info.record, state, count, total, damage, volume.rebuilt)

    def _parity_status(self, record: VolumeRecord, series: SeriesInfo) -> VolumeStatus:
        ok = self.parity_ok.get(record.name)
        if ok is False:
            lie = f"{record.label}: its SHA-256 is not the one the envelope signs"
            return VolumeStatus(record, DAMAGED, damage=(lie,))
        if ok:
            return VolumeStatus(record, VERIFIED)
        return VolumeStatus(record, PENDING if record.name in self.found else UNUSED)

    def complete(self) -> dict[str, Path]:
        """The finished files (SHA-256 -> path in the state directory), all verified and fsynced.

        Raises:
            MediaError: some wanted file still has chunks to verify.
        """
        missing = [sha for sha in sorted(self._plan.wanted) if not self.file_done(sha)]
        if missing:
            raise MediaError(
                f"{len(missing)} of {len(self._plan.wanted)} files are not complete yet "
                f"(first: {missing[0]})",
                hint="import again with the volumes still missing",
            )
        self.sync(every_file=True)
        out = {}
        for sha in sorted(self._plan.wanted):
            part, final = self._part(sha)
            if part.exists():
                part.replace(final)
            out[sha] = final
        fsync_dir(self._files_dir)
        return out

    def close(self) -> None:
        """Closes the .part files (the state stays)."""
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __enter__(self) -> Assembler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parity_lie(record: VolumeRecord) -> tuple[str, ...]:
    return (f"{record.label}: its SHA-256 is not the one the envelope signs",)
