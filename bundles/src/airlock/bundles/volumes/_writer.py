"""Writes one series: its data volumes and, with ``parity`` > 0, its zfec parity volumes.

Two threads: the producer reads chunks from the blob store and hashes them into
1 MiB plaintext buffers (:mod:`._produce`); this thread encrypts, writes and, with
parity, encodes. Without parity the volumes are written one after the other.
With parity they are written *together*, stripe by stripe: every data volume's
next stripe of file bytes is produced, written and kept until zfec has encoded
the stripe's check shares, so the parity costs no second read of the volumes.
zfec codes each byte position on its own, so a stripe is processed in blocks of
``block`` bytes (1 MiB, less for very many volumes): memory stays flat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zfec

from airlock.bundles.models._volumes import DATA, PARITY, SeriesRecord, VolumeRecord, volume_name
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.bundles.volumes._cipher import SEGMENT, Encryption, Sealer, segments
from airlock.bundles.volumes._layers import encryption_for
from airlock.bundles.volumes._layout import STRIPE, LayoutSeries, LayoutVolume
from airlock.bundles.volumes._outputs import OutputFile, discard_all, promote_all
from airlock.bundles.volumes._pipeline import Handoff, run_pipeline
from airlock.bundles.volumes._plan import PlannedVolume, SeriesSpec, plan_volumes
from airlock.bundles.volumes._produce import BlobFiles, VolumeProducer, rotten
from airlock.bundles.volumes._split import SplitHasher

BATCH = 16
"""Segments per hand-off (1 MiB of plaintext)."""


@dataclass(frozen=True)
class SeriesWritten:
    """What the envelope and the layout say about a written series.

    Attributes:
        series: The envelope's series record.
        volumes: The envelope's volume records, data then parity (parity with SHA-256).
        layout: The layout's series entry (chunk names per data volume).
    """

    series: SeriesRecord
    volumes: tuple[VolumeRecord, ...]
    layout: LayoutSeries


def work_block(stripe: int, shares: int) -> int:
    """Bytes of each volume processed per parity step (stripe-sized unless there are many)."""
    block = min(stripe, max(64 << 10, (16 << 20) // max(shares, 1)))
    return block - block % 4096


def write_series(
    out_dir: Path,
    spec: SeriesSpec,
    name_key: bytes,
    volume_size: int | None,
    parity: int = 0,
    progress: Progress = NO_PROGRESS,
) -> SeriesWritten:
    """Writes the data (and parity) volumes of one series into ``out_dir``.

    Every file is written under a temporary name, fsynced, and renamed to its final
    name only when all of the series is complete; on failure the temporaries are removed.

    Args:
        out_dir: An existing directory.
        spec: Series id, recipients (None: plain tars) and files with their chunk indexes.
        name_key: The export run's 32-byte key for chunk names.
        volume_size: Most bytes per data volume file; None for one volume.
        parity: Number of parity volumes (0 … number of data volumes).
        progress: Receives phase ``"export"``, each volume and the bytes written.

    Raises:
        UsageError: the volume size is below :func:`minimum_volume_size`, or the parity
            count is out of bounds.
        IntegrityError: a blob's bytes no longer match its chunk index (names file and chunk).
        NotFoundError: a blob file is missing.
        MediaError, StorageError: the volumes cannot be written.
    """
    encryption = encryption_for(spec.recipients)
    plan = plan_volumes(spec, name_key, volume_size, encryption.geometry, parity)
    k = len(plan)
    record = SeriesRecord(id=spec.id, data=k, parity=parity, stripe=STRIPE)
    encrypted = encryption.encrypted
    data_names = [volume_name(spec.id, DATA, v.number, k, encrypted) for v in plan]
    parity_names = [
        volume_name(spec.id, PARITY, n, parity, encrypted) for n in range(1, 1 + parity)
    ]
    longest = max(v.file_size for v in plan)
    outputs: list[OutputFile] = []
    files = BlobFiles()
    try:
        outputs = [OutputFile(Path(out_dir), name) for name in data_names + parity_names]
        progress.begin("export", sum(v.file_size for v in plan) + parity * longest)
        writer = _SeriesWriter(spec.id, plan, encryption, outputs, parity, progress, data_names)
        block = work_block(STRIPE, k + parity)
        handoff = writer.handoff

        def produce(h: Handoff) -> None:
            if parity:
                _produce_striped(h, spec.id, plan, files, encryption, block, writer.sealers)
            else:
                _produce_in_turn(h, spec.id, plan, files)

        run_pipeline("volumes-write", handoff, produce, writer.consume)
        for volume, out in zip(plan, outputs[:k], strict=True):
            assert out.size == volume.file_size, (out.size, volume.file_size)
        digests = writer.parity_digests()
        promote_all(Path(out_dir), outputs)
    except BaseException:
        discard_all(outputs)
        raise
    finally:
        files.close()
        progress.end()
    volumes = [
        VolumeRecord(name, spec.id, DATA, v.number, k, v.file_size)
        for name, v in zip(data_names, plan, strict=True)
    ] + [
        VolumeRecord(name, spec.id, PARITY, n, parity, longest, digests[n - 1])
        for n, name in enumerate(parity_names, start=1)
    ]
    layout = LayoutSeries(
        spec.id,
        k,
        parity,
        STRIPE,
        tuple(LayoutVolume(v.number, v.file_size, tuple(e.name for e in v.entries)) for v in plan),
    )
    return SeriesWritten(series=record, volumes=tuple(volumes), layout=layout)


def _produce_in_turn(
    handoff: Handoff, series: str, plan: list[PlannedVolume], files: BlobFiles
) -> None:
    for index, volume in enumerate(plan):
        producer = VolumeProducer(series, volume, len(plan), files, _writer_hashes)
        segment = 0
        while not producer.done:
            buffer = handoff.take()
            count = producer.fill(memoryview(buffer)[: BATCH * SEGMENT])
            handoff.send((index, segment, buffer, count, False))
            segment += BATCH


def _produce_striped(
    handoff: Handoff,
    series: str,
    plan: list[PlannedVolume],
    files: BlobFiles,
    encryption: Encryption,
    block: int,
    sealers: list[Sealer],
) -> None:
    """Every volume's file bytes, round by round, enough to fill each one's next block.

    With parity the other thread also encodes (zfec) and hashes the parity volumes:
    this one encrypts too, so that both carry about the same load.
    """
    geometry = encryption.geometry
    plain = memoryview(bytearray(BATCH * SEGMENT))
    producers = [VolumeProducer(series, v, len(plan), files) for v in plan]
    produced = [0] * len(plan)  # segments
    longest = max(v.file_size for v in plan)
    for round_no in range(-(-longest // block)):
        for index, volume in enumerate(plan):
            producer = producers[index]
            target = min((round_no + 1) * block, volume.file_size)
            total = segments(volume.plain_size)
            while not producer.done and geometry.segment_offset(produced[index]) < target:
                missing = target - geometry.segment_offset(produced[index])
                count = min(BATCH, -(-missing // geometry.cipher_segment), total - produced[index])
                first = produced[index]
                if first == 0:
                    handoff.send(
                        (index, 0, sealers[index].header, len(sealers[index].header), True)
                    )
                filled = producer.fill(plain[: count * SEGMENT])
                buffer = handoff.take()
                size = seal(sealers[index], volume, first, plain[:filled], memoryview(buffer))
                handoff.send((index, first, buffer, size, True))
                produced[index] += count
        handoff.send(("round", round_no))


def _writer_hashes(j: int) -> bool:
    """The entries whose chunks this thread hashes without parity (one in four).

    The reading thread reads and hashes, this one encrypts and writes: hashing one
    chunk in four here evens the load of the two cores.
    """
    return j % 4 == 3


def seal(
    sealer: Sealer, volume: PlannedVolume, first: int, plain: memoryview, out: memoryview
) -> int:
    """Seals plaintext segments ``first…`` of a volume into ``out``; returns the bytes."""
    last = segments(volume.plain_size) - 1
    final = first + -(-len(plain) // SEGMENT) - 1 == last
    whole = (last - first) * SEGMENT if final else len(plain)
    size = sealer.seal_run(first, plain[:whole], out, False) if whole else 0
    if final:
        size += sealer.seal_run(last, plain[whole:], out[size:], True)
    return size


class _SeriesWriter:
    """The consuming side: encrypts, writes, collects stripes and encodes parity."""

    def __init__(
        self,
        series: str,
        plan: list[PlannedVolume],
        encryption: Encryption,
        outputs: list[OutputFile],
        parity: int,
        progress: Progress,
        names: Sequence[str],
    ) -> None:
        self._plan = plan
        self._encrypted = encryption.encrypted
        self.sealers: list[Sealer] = [encryption.sealer() for _ in plan]
        self._outputs = outputs
        self._progress = progress
        self._names = names
        geometry = encryption.geometry
        self.handoff = Handoff(buffers=4, size=BATCH * geometry.cipher_segment)
        self._sealed = bytearray(BATCH * geometry.cipher_segment)
        self._splits = [None if parity else SplitHasher(v.entries, _writer_hashes) for v in plan]
        self._parity = (
            _ParityEncoder(
                plan, outputs[len(plan) :], geometry.cipher_segment, geometry.header_size
            )
            if parity
            else None
        )

    def consume(self, message: Any) -> None:
        """Handles one message of the producer."""
        if message[0] == "round":
            assert self._parity is not None
            self._parity.encode_round(message[1], self._progress)
            return
        index, first, buffer, count, sealed = message
        view = memoryview(buffer)[:count]
        volume = self._plan[index]
        out = self._outputs[index]
        if sealed:  # file bytes from the producer (with parity), the header first
            if first == 0 and isinstance(buffer, bytes):
                self._progress.volume(self._names[index], volume.number, len(self._plan))
                if buffer:
                    self._emit(index, out, view)
                return
            self._emit(index, out, view)
            self.handoff.give_back(buffer)
            return
        split = self._splits[index]
        if split is not None:
            split.take(first * SEGMENT, view)
            for j, digest in split.digests.items():
                if digest != volume.entries[j].sha256:
                    raise rotten(volume.sources[j])
            split.digests.clear()
        sealer = self.sealers[index]
        if first == 0:
            self._progress.volume(self._names[index], volume.number, len(self._plan))
            if sealer.header:
                self._emit(index, out, memoryview(sealer.header))
        if self._encrypted:
            sealed_size = seal(sealer, volume, first, view, memoryview(self._sealed))
            self._emit(index, out, memoryview(self._sealed)[:sealed_size])
        else:
            self._emit(index, out, view)
        self.handoff.give_back(buffer)

    def _emit(self, index: int, out: OutputFile, data: memoryview) -> None:
        out.write(data)
        if self._parity is not None:
            self._parity.collect(index, data)
        self._progress.advance(len(data))

    def parity_digests(self) -> list[str]:
        """SHA-256 of every parity volume written."""
        return [] if self._parity is None else self._parity.digests()


class _ParityEncoder:
    """Keeps each data volume's current block of file bytes and encodes the check shares."""

    def __init__(
        self, plan: list[PlannedVolume], outputs: list[OutputFile], cipher_segment: int, head: int
    ) -> None:
        self._k = len(plan)
        self._n = len(outputs)
        self._outputs = outputs
        self._sizes = [v.file_size for v in plan]
        self._longest = max(self._sizes)
        self._block = work_block(STRIPE, self._k + self._n)
        room = self._block + BATCH * cipher_segment + head
        self._buffers = [bytearray(room) for _ in plan]
        self._filled = [0] * self._k
        self._encoder = zfec.Encoder(self._k, self._k + self._n)
        self._wanted = list(range(self._k, self._k + self._n))
        self._hashes = [hashlib.sha256() for _ in outputs]

    def collect(self, index: int, data: memoryview) -> None:
        """Appends file bytes of data volume ``index``."""
        start = self._filled[index]
        self._buffers[index][start : start + len(data)] = data
        self._filled[index] = start + len(data)

    def encode_round(self, round_no: int, progress: Progress) -> None:
        """Encodes block ``round_no`` of every data volume and appends the check shares."""
        length = min(self._block, self._longest - round_no * self._block)
        blocks = []
        for index, buffer in enumerate(self._buffers):
            filled = self._filled[index]
            if filled < length:
                buffer[filled:length] = bytes(length - filled)
            blocks.append(memoryview(buffer)[:length])
        shares = self._encoder.encode(blocks, list(self._wanted))
        for share, out, digest in zip(shares, self._outputs, self._hashes, strict=True):
            digest.update(share)
            out.write(share)
            progress.advance(len(share))
        for index, buffer in enumerate(self._buffers):
            filled = self._filled[index]
            rest = max(0, filled - length)
            if rest:
                buffer[:rest] = buffer[length:filled]
            self._filled[index] = rest

    def digests(self) -> list[str]:
        """SHA-256 of each parity volume."""
        return [d.hexdigest() for d in self._hashes]
