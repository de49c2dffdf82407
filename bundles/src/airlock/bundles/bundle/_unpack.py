"""The strict, streaming tar unpacker behind :func:`airlock.bundles.bundle._payload.read_payload`.

``tarfile`` parses the headers (ustar, pax, GNU long names) over a forward-only
stream; entry data never goes through it. Metadata is kept in memory (bounded),
blobs are streamed to disk while hashed, and every rule of the bundle format is
checked on the final entry name and type that ``tarfile`` reports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.atomic import fsync_dir
from airlock.bundles.bundle._names import (
    EntryKind,
    blob_digest,
    entry_kind,
    is_sha256_hex,
    shown,
)
from airlock.bundles.bundle._streams import CHUNK, DurableWriter
from airlock.bundles.bundle._tar_stream import TRUNCATED_HINT, ArchiveStream, RawReader
from airlock.bundles.errors import AirlockError, IntegrityError, MediaError, UnsafeArchiveError
from airlock.bundles.storage import os_storage_error

MiB = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = bytes(_BLOCK)
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_TYPE_NAMES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.DIRTYPE: "a directory",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


@dataclass(frozen=True)
class PayloadLimits:
    """Bounds on what an archive may make the reader hold in memory.

    Attributes:
        max_metadata_file_bytes: Largest single metadata entry.
        max_metadata_total_bytes: Largest sum of all metadata entries.
        max_entries: Most entries (metadata plus blobs) in one archive.
        max_header_bytes: Most header data (pax records, GNU long names) per entry.
    """

    max_metadata_file_bytes: int = 16 * MiB
    max_metadata_total_bytes: int = 64 * MiB
    max_entries: int = 100_000
    max_header_bytes: int = 1 * MiB


OnMetadata = Callable[[dict[str, bytes]], Mapping[str, int]]


class _HeaderReader(tarfile.TarFile):
    """tarfile used only to parse headers; forgets parsed members to keep memory flat."""

    members: list[tarfile.TarInfo]

    def next(self) -> tarfile.TarInfo | None:
        """The next member, or None at a header tarfile cannot parse."""
        member = super().next()
        self.members.clear()
        return member


_UNSAFE_HINT = "the payload breaks the bundle format; do not import it and tell the hub operator"


def _unsafe(name: str, rule: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"payload entry {shown(name)}: {rule}", hint=_UNSAFE_HINT)


def _local_write_error(dest_dir: Path, exc: OSError) -> AirlockError:
    storage = os_storage_error(exc, dest_dir, "write the unpacked payload under")
    if storage is not None:
        return storage
    return AirlockError(
        f"cannot write the unpacked payload under {dest_dir}: {exc.strerror or exc}",
        hint="check free space and permissions of the data directory",
    )


def check_member(member: tarfile.TarInfo) -> EntryKind:
    """Applies the name and type rules to one entry; returns its kind.

    Raises:
        UnsafeArchiveError: naming the entry and the rule it breaks.
    """
    check_regular(member)
    kind = entry_kind(member.name)
    if kind is None:
        raise _unsafe(
            member.name, "name is neither metadata/<repository>/<file> nor blobs/sha256/<hex>"
        )
    return kind


def check_regular(member: tarfile.TarInfo) -> None:
    """The rules every archive of a bundle applies: safe names, regular files only.

    Raises:
        UnsafeArchiveError: naming the entry and the rule it breaks.
    """
    name = member.name
    if "\x00" in name or "\\" in name:
        raise _unsafe(name, "names must not contain NUL or backslash")
    if name.startswith("/"):
        raise _unsafe(name, "absolute paths are refused")
    if ".." in name.split("/"):
        raise _unsafe(name, "'..' components are refused")
    if member.type not in _REGULAR or member.sparse is not None:
        what = _TYPE_NAMES.get(member.type, f"tar type {member.type!r}")
        what = "a sparse file" if member.sparse is not None else what
        raise _unsafe(name, f"is {what}; only regular files are allowed")
    if member.size < 0:
        raise _unsafe(name, "negative size")


def iter_members(stream: ArchiveStream, limits: PayloadLimits) -> Iterator[tarfile.TarInfo]:
    """The entries of a plaintext tar, header by header, under the strict archive rules.

    Yields each member with ``stream`` positioned at its data; the caller reads (or
    not) its data before asking for the next. At the end, checks the end-of-archive
    marker and that nothing but zeros follows.

    Raises:
        UnsafeArchiveError: a malformed header, a global pax header, too many entries.
        MediaError: the archive is truncated.
    """
    tar: _HeaderReader | None = None
    count = 0
    while True:
        if tar is not None:
            stream.skip_to(tar.offset)
        offset = stream.tell()
        block = stream.peek(_BLOCK)
        if len(block) < _BLOCK:
            raise MediaError(
                f"the payload archive is truncated at offset {offset} (no end-of-archive marker)",
                hint=TRUNCATED_HINT,
            )
        if block == _ZERO_BLOCK:
            stream.check_trailer()
            return
        stream.start_header()
        try:
            if tar is None:
                tar = _HeaderReader(fileobj=stream, mode="r", encoding="utf-8")  # type: ignore[arg-type]
            member = tar.next()
        except AirlockError:
            raise
        except Exception as exc:
            raise UnsafeArchiveError(
                f"malformed tar header at offset {offset}: {exc}", hint=_UNSAFE_HINT
            ) from None
        if member is None:
            raise UnsafeArchiveError(
                f"malformed or truncated tar header at offset {offset}", hint=_UNSAFE_HINT
            )
        if tar.pax_headers:
            raise UnsafeArchiveError(
                f"global pax header at offset {offset} is refused", hint=_UNSAFE_HINT
            )
        if count >= limits.max_entries:
            raise UnsafeArchiveError(
                f"the payload archive has more than {limits.max_entries} entries",
                hint=_UNSAFE_HINT,
            )
        count += 1
        if stream.tell() != member.offset_data:
            raise _unsafe(member.name, "inconsistent tar header")
        yield member


class Unpacker:
    """Reads one archive under the bundle rules; see ``read_payload`` for the contract."""

    def __init__(self, dest_dir: Path, on_metadata: OnMetadata, limits: PayloadLimits) -> None:
        self.dest_dir = dest_dir
        self.blob_dir = dest_dir / "blobs" / "sha256"
        self.limits = limits
        self.metadata: dict[str, bytes] = {}
        self.blobs: dict[str, Path] = {}
        self.callback_error: BaseException | None = None
        self._on_metadata = on_metadata
        self._allowed: dict[str, int] | None = None
        self._names: set[str] = set()
        self._metadata_bytes = 0

    def run(self, raw: RawReader) -> None:
        """Reads the whole archive from ``raw`` (to its very end) and checks it."""
        stream = ArchiveStream(raw, self.limits.max_header_bytes)
        for member in iter_members(stream, self.limits):
            self._entry(stream, member)
        allowed = self._allowed_blobs()
        missing = sorted(set(allowed) - set(self.blobs))
        if missing:
            raise IntegrityError(
                f"{len(missing)} blob(s) listed in the signed metadata are missing from the "
                f"payload, first: {missing[0]}",
                hint="the bundle is incomplete; export it again",
            )
        if self.blobs:
            try:
                for directory in (self.blob_dir, self.blob_dir.parent, self.dest_dir):
                    fsync_dir(directory)
            except OSError as exc:
                raise _local_write_error(self.dest_dir, exc) from None

    def cleanup(self) -> None:
        """Removes everything written under ``dest_dir`` (it was empty before)."""
        shutil.rmtree(self.dest_dir / "blobs", ignore_errors=True)
        self.blobs.clear()

    def _entry(self, stream: ArchiveStream, member: tarfile.TarInfo) -> None:
        kind = check_member(member)
        name = member.name
        if name in self._names:
            raise _unsafe(name, "duplicate name")
        self._names.add(name)
        if kind is EntryKind.METADATA:
            self._metadata_entry(stream, member)
        else:
            self._blob_entry(stream, member)

    def _metadata_entry(self, stream: ArchiveStream, member: tarfile.TarInfo) -> None:
        name, size = member.name, member.size
        if self._allowed is not None:
            raise _unsafe(name, "metadata after the first blob (metadata must come first)")
        if size > self.limits.max_metadata_file_bytes:
            raise _unsafe(
                name,
                f"metadata of {size} bytes is above the limit of "
                f"{self.limits.max_metadata_file_bytes}",
            )
        if self._metadata_bytes + size > self.limits.max_metadata_total_bytes:
            raise _unsafe(
                name,
                f"metadata above the total limit of {self.limits.max_metadata_total_bytes} bytes",
            )
        data = bytearray(size)
        stream.fill(memoryview(data), f"entry {shown(name)}")
        self._metadata_bytes += size
        self.metadata[name] = bytes(data)

    def _blob_entry(self, stream: ArchiveStream, member: tarfile.TarInfo) -> None:
        name, size = member.name, member.size
        digest_hex = blob_digest(name)
        signed = self._allowed_blobs().get(digest_hex)
        if signed is None:
            raise _unsafe(name, "file not listed in the signed metadata")
        if size != signed:  # checked on the header, before any data is read
            relation = (
                f"above the signed one ({size} > {signed}"
                if size > signed
                else (f"below the signed one ({size} < {signed}")
            )
            raise IntegrityError(
                f"payload entry {shown(name)}: size {relation} bytes)",
                hint="the bundle does not match its signed metadata; do not import it",
            )
        try:
            self._write_blob(stream, name, digest_hex, size)
        except OSError as exc:
            raise _local_write_error(self.dest_dir, exc) from None

    def _write_blob(self, stream: ArchiveStream, name: str, digest_hex: str, size: int) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        partial = self.blob_dir / f"{digest_hex}.partial"
        digest = hashlib.sha256()
        # Plaintext: readable by this user only (0600), whatever the umask.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb", buffering=0) as handle:
            out = DurableWriter(handle.fileno())
            remaining = size
            while remaining:
                view = stream.scratch[: min(CHUNK, remaining)]
                stream.fill(view, f"entry {shown(name)}")
                digest.update(view)
                out.write(view)
                remaining -= len(view)
            if digest.hexdigest() != digest_hex:
                raise IntegrityError(
                    f"payload entry {shown(name)}: content hash {digest.hexdigest()} "
                    "does not match its name",
                    hint="the bundle does not match its signed metadata; do not import it",
                )
            out.sync()
        final = self.blob_dir / digest_hex
        partial.replace(final)
        self.blobs[digest_hex] = final

    def _allowed_blobs(self) -> dict[str, int]:
        """Calls ``on_metadata`` once (at the first blob or the end) and keeps its answer."""
        if self._allowed is None:
            try:
                answer = self._on_metadata(self.metadata)
            except BaseException as exc:
                self.callback_error = exc
                raise
            allowed = {str(k): int(v) for k, v in answer.items()}
            bad = [k for k, v in allowed.items() if not is_sha256_hex(k) or v < 0]
            if bad:
                raise ValueError(f"on_metadata returned an invalid blob entry {bad[0]!r}")
            self._allowed = allowed
        return self._allowed
