"""The per-site part (``site.age``, or ``site.tar`` without encryption): metadata, indexes, layout.

Its plaintext is a tar of exactly these regular files::

    metadata/<repository>/<file>    TUF and in-toto metadata, exactly as format 1
    index/<file sha256>.json        the chunk index of every file the bundle carries
    layout.json                     where the chunks are (:class:`Layout`)

It is small (about 67 bytes per MiB of model) and is read into memory under a
bound, strictly: the format-1 archive rules (regular files only, safe names, no
pax globals, nothing after the end) plus these three name forms, no duplicates,
exactly one layout.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.errors import (
    DecryptionError,
    IntegrityError,
    MediaError,
    UnsafeArchiveError,
    UsageError,
)
from airlock.bundles.models._volumes import SITE_PART_NAMES
from airlock.bundles.volumes._cipher import SEGMENT, AuthenticationFailed, segments
from airlock.bundles.volumes._layers import decryption_for, encryption_for
from airlock.bundles.volumes._layout import Layout
from airlock.bundles.volumes._outputs import OutputFile, discard_all, promote_all

SITE_LIMIT = 256 << 20
"""Most plaintext bytes a per-site part may hold (it is read into memory)."""
LAYOUT_ENTRY = "layout.json"
INDEX_NAME = re.compile(r"index/([0-9a-f]{64})\.json")
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_UNSAFE_HINT = "the per-site part breaks the bundle format; do not import it"


@dataclass(frozen=True)
class SitePart:
    """What a per-site part carries (nothing in it is verified yet).

    Attributes:
        metadata: ``metadata/<repository>/<file>`` -> bytes.
        indexes: File SHA-256 -> the chunk index bytes (check them with ``check_binding``).
        layout: The parsed layout.
    """

    metadata: dict[str, bytes]
    indexes: dict[str, bytes]
    layout: Layout


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def site_tar(
    metadata: Sequence[tuple[str, bytes]], indexes: Mapping[str, bytes], layout: Layout
) -> bytes:
    """The plaintext tar of a per-site part.

    Raises:
        UsageError: a metadata or index name that is not allowed, or listed twice.
    """
    from airlock.bundles.bundle._names import METADATA_NAME, shown

    parts: list[bytes] = []
    names: set[str] = set()
    entries = list(metadata)
    entries += [(f"index/{sha}.json", data) for sha, data in sorted(indexes.items())]
    entries.append((LAYOUT_ENTRY, layout.to_bytes()))
    for position, (name, data) in enumerate(entries):
        allowed = (
            METADATA_NAME.fullmatch(name)
            if position < len(metadata)
            else INDEX_NAME.fullmatch(name) or name == LAYOUT_ENTRY
        )
        if not allowed or name in names:
            raise UsageError(f"per-site part entry {shown(name)} is not allowed or listed twice")
        names.add(name)
        parts += [_header(name, len(data)), data, bytes(-len(data) % _BLOCK)]
    end = sum(len(p) for p in parts) + 2 * _BLOCK
    parts.append(bytes(2 * _BLOCK + (-end % _RECORD)))
    return b"".join(parts)


def write_site_part(
    out_dir: Path,
    recipients: Sequence[str] | None,
    metadata: Sequence[tuple[str, bytes]],
    indexes: Mapping[str, bytes],
    layout: Layout,
) -> tuple[str, int, str]:
    """Writes ``site.age`` (``site.tar`` when ``recipients`` is None) into ``out_dir``.

    Args:
        out_dir: An existing directory (the site's directory of the bundle).
        recipients: The site's age recipients; None: no encryption.
        metadata: ``(metadata/<repository>/<file>, bytes)`` in order, as format 1.
        indexes: File SHA-256 -> its chunk index bytes.
        layout: The layout of the series this site reads.

    Returns:
        ``(file name, size, sha256)`` for the envelope's ``site_part``.
    """
    plain = memoryview(site_tar(metadata, indexes, layout))
    encryption = encryption_for(recipients)
    name = SITE_PART_NAMES[0] if encryption.encrypted else SITE_PART_NAMES[1]
    sealer = encryption.sealer()
    outputs = [OutputFile(Path(out_dir), name)]
    digest = hashlib.sha256()
    try:
        out = outputs[0]
        last = segments(len(plain)) - 1
        sealed = bytearray(len(plain) + (last + 1) * sealer.tag)
        whole = last * SEGMENT
        pos = sealer.seal_run(0, plain[:whole], memoryview(sealed), False) if whole else 0
        pos += sealer.seal_run(last, plain[whole:], memoryview(sealed)[pos:], True)
        for piece in (sealer.header, memoryview(sealed)[:pos]):
            digest.update(piece)
            out.write(piece)
        size = out.size
        promote_all(Path(out_dir), outputs)
    except BaseException:
        discard_all(outputs)
        raise
    return name, size, digest.hexdigest()


def read_site_part(
    source: int | Path,
    identities: Sequence[bytes] | None,
    limit: int = SITE_LIMIT,
    size: int | None = None,
    sha256: str | None = None,
) -> SitePart:
    """Reads a per-site part into memory, checks it against the envelope, decrypts, unpacks.

    The file is read once: the bytes hashed are the bytes decrypted.

    Args:
        source: An open file descriptor (read from its current position) or a path.
        identities: The site's age identities; None for ``site.tar``.
        limit: Most plaintext bytes accepted.
        size: The envelope's size for it (checked when given).
        sha256: The envelope's SHA-256 for it (checked when given).

    Raises:
        IntegrityError: its size or SHA-256 is not the signed one.
        DecryptionError: not encrypted to these identities, or damaged.
        UnsafeArchiveError: the archive breaks the rules.
        MediaError: it cannot be read, or is above the limit.
    """
    data = _read_bounded(source, limit)
    if size is not None and len(data) != size:
        raise IntegrityError(
            f"the per-site part has {len(data):,} bytes, the envelope says {size:,}",
            hint="copy the bundle again",
        )
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(
            "the per-site part's SHA-256 is not the one the envelope signs",
            hint="copy the bundle again",
        )
    plain = _decrypt(data, identities, limit)
    return _unpack(plain, limit)


def _read_bounded(source: int | Path, limit: int) -> bytes:
    most = limit + (limit // SEGMENT + 1) * 16 + (1 << 20)
    try:
        if isinstance(source, int):
            handle = io.FileIO(source, "r", closefd=False)
        else:
            handle = io.FileIO(os.fspath(source), "r")
        with handle:
            data = handle.read(most + 1) or b""
    except OSError as exc:
        raise MediaError(f"cannot read the per-site part: {exc.strerror or exc}") from None
    if len(data) > most:
        raise MediaError(
            f"the per-site part is larger than the limit of {limit:,} bytes",
            hint="the bundle is not one Airlock wrote; do not import it",
        )
    return data


def _decrypt(data: bytes, identities: Sequence[bytes] | None, limit: int) -> memoryview:
    decryption = decryption_for(identities)
    try:
        head = decryption.header_length(data)
        if head is None:
            raise AuthenticationFailed("the age header is incomplete")
        opener = decryption.opener(data[:head])
        cipher = memoryview(data)[head:]
        count = max(1, -(-len(cipher) // (SEGMENT + opener.tag)))
        plain_size = len(cipher) - count * opener.tag
        if plain_size < 0 or plain_size > limit:
            raise AuthenticationFailed("the ciphertext has an impossible length")
        plain = bytearray(plain_size)
        opener.open_run(0, cipher, memoryview(plain), True)
    except AuthenticationFailed as exc:
        raise DecryptionError(
            f"the per-site part cannot be decrypted: {exc}",
            hint="check that the bundle was exported for this site; else copy it again",
        ) from None
    return memoryview(plain)


def _unpack(plain: memoryview, limit: int) -> SitePart:
    # The format-1 strict tar reader; imported here: the bundle package is heavy to load.
    from airlock.bundles.bundle._names import METADATA_NAME, shown
    from airlock.bundles.bundle._tar_stream import ArchiveStream
    from airlock.bundles.bundle._unpack import PayloadLimits, check_regular, iter_members

    limits = PayloadLimits(
        max_metadata_file_bytes=limit, max_metadata_total_bytes=limit, max_entries=1_000_000
    )
    stream = ArchiveStream(io.BytesIO(plain), limits.max_header_bytes)
    metadata: dict[str, bytes] = {}
    indexes: dict[str, bytes] = {}
    layout: bytes | None = None
    seen: set[str] = set()
    for member in iter_members(stream, limits):
        check_regular(member)
        name = member.name
        index = INDEX_NAME.fullmatch(name)
        if not (METADATA_NAME.fullmatch(name) or index or name == LAYOUT_ENTRY):
            raise UnsafeArchiveError(
                f"per-site part entry {shown(name)}: not metadata/…, index/<sha256>.json "
                "or layout.json",
                hint=_UNSAFE_HINT,
            )
        if name in seen:
            raise UnsafeArchiveError(
                f"per-site part entry {shown(name)}: duplicate name", hint=_UNSAFE_HINT
            )
        seen.add(name)
        body = bytearray(member.size)
        stream.fill(memoryview(body), f"entry {shown(name)}")
        if index:
            indexes[index.group(1)] = bytes(body)
        elif name == LAYOUT_ENTRY:
            layout = bytes(body)
        else:
            metadata[name] = bytes(body)
    if layout is None:
        raise UnsafeArchiveError("the per-site part has no layout.json", hint=_UNSAFE_HINT)
    return SitePart(metadata=metadata, indexes=indexes, layout=Layout.from_bytes(layout))
