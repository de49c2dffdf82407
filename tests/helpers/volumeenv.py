"""Bundle format v2 volumes for tests: files, chunk indexes, a written series and its plan.

Real age (airlock.bundles.agestream, interoperable with the stock tool), real zfec,
real files; small chunks keep the tests fast (an index carries its chunk size).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlock.bundles.agestream import generate_identity, identity_text, recipient_of
from airlock.bundles.chunks import ChunkIndex, index_file
from airlock.bundles.errors import AirlockError
from airlock.bundles.models import VolumeRecord
from airlock.bundles.volumes import (
    Assembler,
    AssemblyPlan,
    Layout,
    SeriesFile,
    SeriesSpec,
    SeriesWritten,
    find_volumes,
    new_name_key,
    new_series_id,
    write_series,
)

KiB = 1 << 10
MiB = 1 << 20


def make_files(directory: Path, sizes: Sequence[int], seed: int = 0) -> dict[str, Path]:
    """Files of pseudo-random bytes (distinct per seed and position): SHA-256 -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for n, size in enumerate(sizes):
        data = bytearray()
        block = 0
        while len(data) < size:
            data += hashlib.sha512(f"{seed}/{n}/{block}".encode()).digest() * 64
            block += 1
        path = directory / f"file-{seed}-{n}.bin"
        path.write_bytes(bytes(data[:size]))
        files[hashlib.sha256(data[:size]).hexdigest()] = path
    return files


def indexes_of(files: Mapping[str, Path], chunk_size: int) -> dict[str, ChunkIndex]:
    """The chunk index of every file."""
    return {
        sha: index_file(path, sha, path.stat().st_size, chunk_size) for sha, path in files.items()
    }


@dataclass
class Bundle:
    """A written series and what a reader needs for it."""

    out: Path
    written: SeriesWritten
    layout: Layout
    indexes: dict[str, ChunkIndex]
    files: dict[str, Path]
    identity: bytes | None
    wanted: frozenset[str] = field(default_factory=frozenset)

    @property
    def identities(self) -> list[bytes] | None:
        return None if self.identity is None else [self.identity]

    def plan(self, wanted: Iterable[str] | None = None) -> AssemblyPlan:
        return AssemblyPlan(
            series=(self.written.series,),
            volumes=self.written.volumes,
            layout=self.layout,
            indexes=self.indexes,
            wanted=frozenset(self.wanted if wanted is None else wanted),
        )

    def plan_id(self) -> str:
        """The digest that names this plan's state."""
        from airlock.bundles.volumes._readplan import resolve

        return resolve(self.plan()).plan_id

    def data(self) -> list[VolumeRecord]:
        return [v for v in self.written.volumes if v.kind == "data"]

    def parity(self) -> list[VolumeRecord]:
        return [v for v in self.written.volumes if v.kind == "parity"]

    def path(self, record: VolumeRecord) -> Path:
        return self.out / record.name

    def key_file(self, directory: Path) -> Path:
        """The identity in an age identity file (for the stock ``age -d -i``)."""
        assert self.identity is not None
        path = directory / "site-key.txt"
        path.write_text(identity_text(self.identity) + "\n")
        return path


def write_bundle(
    tmp: Path,
    sizes: Sequence[int] = (300 * KiB, 170 * KiB),
    *,
    chunk_size: int = 16 * KiB,
    volume_size: int | None = 70 * KiB,
    parity: int = 0,
    encrypted: bool = True,
    seed: int = 0,
    identity: bytes | None = None,
    name_key: bytes | None = None,
    out: Path | None = None,
) -> Bundle:
    """Writes one series of the given files and returns it with its plan's parts."""
    files = make_files(tmp / f"blobs-{seed}", sizes, seed)
    indexes = indexes_of(files, chunk_size)
    if encrypted and identity is None:
        identity = generate_identity()
    recipients = (recipient_of(identity),) if encrypted and identity else None
    key = name_key or new_name_key()
    spec = SeriesSpec(
        new_series_id(),
        recipients,
        tuple(SeriesFile(sha, files[sha], indexes[sha]) for sha in files),
    )
    out = out or tmp / f"bundle-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    written = write_series(out, spec, key, volume_size, parity)
    return Bundle(
        out=out,
        written=written,
        layout=Layout(key, (written.layout,)),
        indexes=indexes,
        files=files,
        identity=identity if encrypted else None,
        wanted=frozenset(files),
    )


@dataclass
class Outcome:
    """What one assembly run did."""

    assembler: Assembler
    error: AirlockError | None
    bytes_read: int

    @property
    def lines(self) -> str:
        return "\n".join(self.assembler.status().lines())


def assemble(
    bundle: Bundle,
    state: Path,
    *,
    directories: Sequence[Path] | None = None,
    plan: AssemblyPlan | None = None,
    **options: object,
) -> Outcome:
    """Runs an assembler over the bundle's directory (or ``directories``); keeps it open."""
    state.mkdir(mode=0o700, exist_ok=True)
    counted = [0]
    hook = options.pop("on_read", None)

    def on_read(count: int) -> None:
        counted[0] += count
        if callable(hook):
            hook(counted[0])

    assembler = Assembler(
        plan or bundle.plan(),
        state,
        bundle.identities,
        on_read=on_read,
        **options,  # type: ignore[arg-type]
    )
    names = [v.name for v in bundle.written.volumes]
    found = find_volumes(list(directories or [bundle.out]), names)
    error = None
    try:
        assembler.run(found)
    except AirlockError as exc:
        error = exc
    return Outcome(assembler, error, counted[0])


def check_complete(outcome: Outcome, bundle: Bundle) -> dict[str, Path]:
    """Completes the assembly and checks every file's bytes against the original."""
    assert outcome.error is None, outcome.error
    done = outcome.assembler.complete()
    assert set(done) == set(bundle.wanted)
    for sha, path in done.items():
        assert path.read_bytes() == bundle.files[sha].read_bytes()
    return done


def hide(bundle: Bundle, *records: VolumeRecord) -> None:
    """Moves volumes out of the bundle directory (a lost medium)."""
    lost = bundle.out.parent / f"{bundle.out.name}-lost"
    lost.mkdir(exist_ok=True)
    for record in records:
        shutil.move(bundle.path(record), lost / record.name)


def flip_byte(path: Path, offset: int) -> None:
    """Changes one byte of a file in place."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x5A]))


def final_names(directory: Path) -> list[str]:
    """Files in ``directory`` that are not temporaries."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def file_size(path: Path) -> int:
    return os.stat(path).st_size
