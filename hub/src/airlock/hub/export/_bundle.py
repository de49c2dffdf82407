"""Bundle export, in small public steps that tests can recombine.

A bundle for one site is made in three phases:

1. **Plan** (:class:`ExportPlan`, made by ``Hub.plan_export``; nothing is
   written): the bundle expiry is now + the site's transit budget;
   :func:`check_offline_expiry` refuses when an offline role would expire
   first; online roles that would are re-signed later; fresh snapshots and
   timestamps expire with the bundle; :func:`collect_metadata` and
   :func:`collect_blobs` list what goes into the payload, in order. Files
   of versions already sent to the site are left out (the envelope lists
   those versions in ``omitted``) unless the export is ``full``; the kind
   is ``full``, ``delta`` (something omitted) or ``revocation`` (no files,
   and revocations the site has not been sent yet).
2. **Write** (:func:`write_bundle_files`): ``write_payload`` streams the tar
   (encrypted with age unless the site opted out) and ``envelope.json`` is
   signed with the envelope key, all in a work directory next to the
   destination (:func:`prepare_out_dir`). The envelope also carries, unsigned,
   every Director root version of the payload (:func:`director_roots`).
3. **Commit** (``Hub.commit_export``): the work directory is renamed into
   place, the repository files of the plan are written, and the site's
   sequence number and the audit entry commit in one transaction.

:func:`write_bundle` runs phase 2 plus the rename on its own, with no
database: the spoke's attack tests use it to build bundles from a modified
metadata list, signed with the real envelope key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes, fsync_dir
from airlock.bundles.bundle import ENVELOPE_FILE, BlobSource, sign_envelope, write_payload
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, UsageError
from airlock.bundles.models import BundleKind, Envelope, ModelFile
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.hub.export._media import (
    EnvelopeClaims,
    MediaOptions,
    SiteContent,
    write_shared_volumes,
    write_site_files,
)
from airlock.hub.repos._blobstore import BlobStore
from airlock.hub.repos._director import DirectorRoots, SiteMetadata
from airlock.hub.repos._image import ImageRepo
from airlock.hub.repos._tufmeta import StagedWrites

RESIGN_MARGIN_DAYS = 30
"""Online roles re-signed at export live at least transit budget + this many days."""

FORMAT_1 = MediaOptions(format_version=1)
"""One ``payload.age``, as the previous release wrote (and spokes still read)."""

MetadataList = list[tuple[str, bytes]]
"""Payload metadata entries, in order: (archive name, bytes)."""

DIRECTOR_ROOT_ENTRY = re.compile(
    rf"{tufrepo.METADATA_PREFIX}/{tufrepo.DIRECTOR}/([1-9][0-9]*)\.root\.json"
)


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export will write, computed without changing anything.

    Attributes:
        site_id: The destination site.
        bundle_id: The bundle's id, chosen at planning time: the Director
            timestamp in ``metadata`` signs it with the other envelope claims.
        sequence: The bundle's sequence number (the site's last + 1).
        created: The hub's "now" when the plan was made.
        expires: created + the site's transit budget.
        recipients: age recipients of the payload, or None for a plain tar.
        metadata: Archive name and bytes of every metadata file, in payload order.
        blobs: The model files to ship, one per distinct SHA-256.
        resigned: Online roles re-signed because they would expire before the bundle.
        base: (Image timestamp version, site timestamp version) the plan built on;
            a plan is refused at commit time if the repository moved on since.
        writes: Repository files to persist when the export commits.
        kind: ``full``, ``delta`` or ``revocation`` (see the module docstring).
        omitted: ``name@version`` of assigned versions whose files are left out.
        carried: (name, version, filename, sha256) of every file the bundle
            carries, recorded as sent to the site when the export commits.
        revocations: How many revocations the bundle's Director metadata lists.
        full: Planned with ``full`` (every assigned version's files).
        indexes: The chunk index of every blob, by SHA-256 (format 2; each
            index's digest is signed into the file's Director target).
    """

    site_id: str
    sequence: int
    created: dt.datetime
    expires: dt.datetime
    recipients: list[str] | None
    metadata: MetadataList
    blobs: list[BlobSource]
    resigned: tuple[str, ...] = ()
    base: tuple[int, int] = (0, 0)
    writes: StagedWrites = field(default_factory=StagedWrites, compare=False, repr=False)
    kind: BundleKind = BundleKind.FULL
    omitted: tuple[str, ...] = ()
    carried: tuple[tuple[str, str, str, str], ...] = ()
    revocations: int = 0
    full: bool = False
    indexes: dict[str, ChunkIndex] = field(default_factory=dict, compare=False, repr=False)
    bundle_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def encrypted(self) -> bool:
        """True when the payload is encrypted."""
        return self.recipients is not None


def check_offline_expiry(
    site_id: str, image: ImageRepo, director: DirectorRoots, bundle_expires: dt.datetime
) -> None:
    """Refuses an export whose offline roles expire before the bundle.

    Raises:
        UsageError: the Image root, the Image targets or the Director root
            expires before ``bundle_expires`` (each is named with its expiry).
    """
    late = []
    for label, signed in (
        ("Image root", image.root.signed),
        ("Image targets", image.targets.signed),
        ("Director root", director.root.signed),
    ):
        expires = tufrepo.signed_expires(signed)
        if expires < bundle_expires:
            late.append(f"{label} (version {signed.version}) expires {utc_iso(expires)}")
    if late:
        raise UsageError(
            f"cannot export for {site_id}: the bundle would expire {utc_iso(bundle_expires)}, "
            f"but the {'; the '.join(late)}",
            hint="have the security officers run a re-signing ceremony for the offline roles "
            "(root, targets) and adopt its output with `airlock hub trust update --from DIR`, "
            "or lower the site's transit budget",
        )


def expires_before(md_expires: dt.datetime, bundle_expires: dt.datetime) -> bool:
    """True when a role expiring at ``md_expires`` must be re-signed for the bundle."""
    return md_expires.astimezone(dt.UTC) < bundle_expires


def image_metadata(image: ImageRepo) -> MetadataList:
    """The Image entries: every root, timestamp, snapshot, targets, models, families."""
    assert image.snapshot is not None and image.timestamp is not None
    name = tufrepo.archive_metadata_name
    entries = [
        (name(tufrepo.IMAGE, tufrepo.metadata_filename("root", n)), data)
        for n, data in enumerate(image.root_bytes, start=1)
    ]
    entries.append((name(tufrepo.IMAGE, "timestamp.json"), tufrepo.to_bytes(image.timestamp)))
    version = image.snapshot.signed.version
    entries.append(
        (
            name(tufrepo.IMAGE, tufrepo.metadata_filename("snapshot", version)),
            tufrepo.to_bytes(image.snapshot),
        )
    )
    for role, md in image.targets_roles().items():
        filename = tufrepo.metadata_filename(role, md.signed.version)
        entries.append((name(tufrepo.IMAGE, filename), tufrepo.to_bytes(md)))
    return entries


def director_metadata(director: DirectorRoots, site: SiteMetadata) -> MetadataList:
    """The Director entries for one site: every root, timestamp, snapshot, targets."""
    name = tufrepo.archive_metadata_name
    entries = [
        (name(tufrepo.DIRECTOR, tufrepo.metadata_filename("root", n)), data)
        for n, data in enumerate(director.root_bytes, start=1)
    ]
    entries.append((name(tufrepo.DIRECTOR, "timestamp.json"), tufrepo.to_bytes(site.timestamp)))
    for role, md in (("snapshot", site.snapshot), ("targets", site.targets)):
        filename = tufrepo.metadata_filename(role, md.signed.version)
        entries.append((name(tufrepo.DIRECTOR, filename), tufrepo.to_bytes(md)))
    return entries


def collect_metadata(image: ImageRepo, director: DirectorRoots, site: SiteMetadata) -> MetadataList:
    """Every metadata entry of a site's bundle: Image first, then Director."""
    return image_metadata(image) + director_metadata(director, site)


def collect_blobs(store: BlobStore, files: Iterable[ModelFile]) -> list[BlobSource]:
    """The blobs to ship for ``files``, one per distinct SHA-256, in first-seen order.

    Raises:
        NotFoundError: a blob is missing from the store.
        IntegrityError: a blob's size differs from the recorded length.
    """
    blobs: dict[str, BlobSource] = {}
    for file in files:
        if file.sha256 not in blobs:
            path = store.checked_path(file.sha256, file.length)
            blobs[file.sha256] = BlobSource(sha256=file.sha256, path=path, length=file.length)
    return list(blobs.values())


def prepare_out_dir(out_dir: Path) -> Path:
    """Checks the destination and creates the work directory next to it.

    Missing parent directories are created.

    Raises:
        ConflictError: ``out_dir`` exists and is not an empty directory.
        UsageError: its parent directory cannot be created.
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or (
        out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    ):
        raise ConflictError(
            f"{out_dir} already exists and is not an empty directory",
            hint="export into a new directory; bundles are never overwritten",
        )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the parent directory of {out_dir}: {exc.strerror}",
            hint="check the path and that the removable medium is mounted and writable",
        ) from None
    work = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    return work


def write_bundle_files(
    work_dir: Path,
    *,
    site_id: str,
    sequence: int,
    created: dt.datetime,
    expires: dt.datetime,
    metadata: MetadataList,
    blobs: list[BlobSource],
    recipients: list[str] | None,
    signers: list[Signer],
    kind: BundleKind = BundleKind.FULL,
    source: str = "hub",
    bundle_id: str | None = None,
    omitted: tuple[str, ...] = (),
    media: MediaOptions = FORMAT_1,
    indexes: dict[str, ChunkIndex] | None = None,
    progress: Progress = NO_PROGRESS,
) -> Envelope:
    """Writes the bundle's files and the signed ``envelope.json`` into ``work_dir``.

    Format 2 (``media``) needs the chunk index of every blob (``indexes``).

    Returns:
        The envelope that was signed.
    """
    roots = director_roots(metadata)
    if media.format_version == 2:
        unindexed = [b.sha256 for b in blobs if b.sha256 not in (indexes or {})]
        if unindexed:
            raise UsageError(
                f"format 2 needs the chunk index of every blob; {unindexed[0][:16]}… has none",
                hint="pass the plan's indexes (ExportPlan.indexes), or write format 1",
            )
        content = SiteContent(
            site_id=site_id,
            recipients=tuple(recipients) if recipients is not None else None,
            blobs=tuple(blobs),
            indexes={b.sha256: indexes[b.sha256] for b in blobs} if indexes else {},
        )
        site_media = write_shared_volumes(work_dir, [content], media, progress)[site_id]
        claims = EnvelopeClaims(
            bundle_id=bundle_id or str(uuid.uuid4()),
            kind=kind,
            sequence=sequence,
            created=created,
            expires=expires,
            source=source,
            omitted=tuple(omitted),
        )
        return write_site_files(work_dir, claims, metadata, content, site_media, signers, roots)
    parts = write_payload(work_dir, metadata, blobs, recipients)
    envelope = Envelope(
        bundle_id=bundle_id or str(uuid.uuid4()),
        kind=kind,
        source=source,
        site_id=site_id,
        sequence=sequence,
        created=created,
        expires=expires,
        encrypted=recipients is not None,
        parts=tuple(parts),
        omitted=tuple(omitted),
    )
    atomic_write_bytes(work_dir / ENVELOPE_FILE, sign_envelope(envelope, signers, roots))
    return envelope


def director_roots(metadata: MetadataList) -> dict[str, Any] | None:
    """The envelope's ``roots``: every Director root version the payload carries.

    Lets a site walk an offline root rotation before it checks the envelope
    (:mod:`airlock.bundles.tuf._root_chain`); None when the list carries none.
    """
    found = {}
    for name, data in metadata:
        match = DIRECTOR_ROOT_ENTRY.fullmatch(name)
        if match:
            found[int(match.group(1))] = json.loads(data)
    if not found:
        return None
    return {tufrepo.DIRECTOR: [found[version] for version in sorted(found)]}


def promote_bundle(work_dir: Path, out_dir: Path) -> None:
    """Renames the finished work directory to ``out_dir`` (an empty ``out_dir`` is replaced).

    Raises:
        ConflictError: ``out_dir`` was filled by someone else meanwhile.
    """
    try:
        Path(work_dir).rename(out_dir)
    except OSError as exc:
        raise ConflictError(f"cannot move the bundle into {out_dir}: {exc.strerror}") from None
    fsync_dir(Path(out_dir).parent)


def write_bundle(
    out_dir: Path,
    *,
    site_id: str,
    sequence: int,
    created: dt.datetime,
    expires: dt.datetime,
    metadata: MetadataList,
    blobs: list[BlobSource],
    recipients: list[str] | None,
    signers: list[Signer],
    kind: BundleKind = BundleKind.FULL,
    source: str = "hub",
    bundle_id: str | None = None,
    omitted: tuple[str, ...] = (),
    media: MediaOptions = FORMAT_1,
    indexes: dict[str, ChunkIndex] | None = None,
) -> Envelope:
    """Writes a complete bundle directory with no database involved (tests and tooling).

    Same arguments as :func:`write_bundle_files`; the bundle is built next to
    ``out_dir`` and renamed into place only when complete. Nothing is
    recorded: the hub's sequence number and audit log do not change.
    """
    work = prepare_out_dir(out_dir)
    try:
        envelope = write_bundle_files(
            work,
            site_id=site_id,
            sequence=sequence,
            created=created,
            expires=expires,
            metadata=metadata,
            blobs=blobs,
            recipients=recipients,
            signers=signers,
            kind=kind,
            source=source,
            bundle_id=bundle_id,
            omitted=omitted,
            media=media,
            indexes=indexes,
        )
        promote_bundle(work, out_dir)
        return envelope
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(work)
