"""Importing a format-2 bundle (volumes on one or several media), resumable.

The steps, each failing closed (numbers as in the site admin's guide and
:mod:`airlock.spoke.importing._importer`, which format 1 keeps):

1. Envelope, from the media (``envelope.json`` or ``sites/<site>/envelope.json``,
   every copy identical) or, when the media carry only volumes, from the
   pending import they continue: verified as format 1's
   (:func:`~airlock.spoke.importing._steps.check_envelope`). Its resumable
   state (:mod:`airlock.spoke.importing._pending`) is found or created.
2. Per-site part: taken from the state when an earlier run verified it (no
   medium is read again), else from the media: a regular file whose size and
   SHA-256 are the envelope's (checked before the site's identity is unlocked),
   decrypted and read strictly into memory
   (:mod:`airlock.spoke.importing._site_part`).
3. TUF: both repositories verified from the site's trusted metadata; the
   envelope's claims must equal the Director timestamp's; the expected files
   are every assigned file but those of omitted versions (staged already).
4. Every expected file's chunk index must be the one its verified Director
   target binds (``custom.airlock.chunks``: digest, count, file hash and length).
   Then the verified per-site part is kept in the state (plaintext, 0600).
5. Volumes: the assembler (:class:`airlock.bundles.volumes.Assembler`) checks
   each data volume's header and every entry against the layout and every
   chunk against its index, writes verified chunks into the state's part files,
   checkpoints as it goes (a kill -9 loses at most the last checkpoint) and
   rebuilds missing or damaged volumes from parity.
6. Not enough volumes: refused (exit 9) naming every missing or damaged volume
   and how many more are needed; ``spoke.import.partial`` is audited and the
   state is kept: importing again with more media continues.
7. Complete: in-toto, the validation gate, promotion (hard links from the
   state, so a failed commit leaves the state whole) and one transaction with
   the signed receipt (:func:`~airlock.spoke.importing._steps.stage_verified`);
   then the state is dropped, and so is any state this import superseded.

A refusal that more media cannot fix (any verification failure) drops the
state; anything else (missing media, a full disk, a wrong passphrase, an
interruption) keeps it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from airlock.bundles.audit import ReceiptFile
from airlock.bundles.bundle import unverified_envelope
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    AirlockError,
    MediaError,
    NotEnoughVolumesError,
    VerificationError,
)
from airlock.bundles.models import Envelope
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.bundles.tuf import verify_repositories
from airlock.bundles.volumes import (
    Assembler,
    AssemblyPlan,
    AssemblyStatus,
    SitePart,
)
from airlock.spoke.importing import _pending as pending_state
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._media import Media
from airlock.spoke.importing._pending import PendingImport
from airlock.spoke.importing._receipt import ReceiptFacts
from airlock.spoke.importing._site_part import (
    bound_indexes,
    plain_site_tar,
    read_copy,
    site_from_media,
)
from airlock.spoke.importing._steps import (
    AuditedImport,
    CheckedEnvelope,
    Trusted,
    check_envelope,
    expected_blobs,
    load_state,
    stage_verified,
    staged_paths,
)
from airlock.spoke.importing._storage import new_scratch, private_dir, write_faults
from airlock.spoke.importing._trust import check_payload
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import SpokeState

WANTED_COPY = "wanted.json"
"""SHA-256 → length of the files the assembly builds (with the verified per-site part)."""


def import_volumes(
    home: SpokeHome,
    media: Media,
    clock: Clock,
    audit: AuditedImport,
    progress: Progress = NO_PROGRESS,
    on_read: Callable[[int], None] | None = None,
) -> ImportResult:
    """Verifies and stages a format-2 bundle from ``media``; call it under the import lock.

    Args:
        home: The spoke home.
        media: What the given directories hold (:func:`~._media.scan_media`).
        clock: The clock.
        audit: The failure audit of the import (filled in here).
        progress: Receives the assembler's progress.
        on_read: Called with the size of every read from a volume file (tests).

    Raises:
        NotEnoughVolumesError: volumes are missing or damaged beyond repair (state kept).
        AirlockError: the subclass names the step that failed.
    """
    state, trusted = load_state(home)
    pending_state.tidy(home, state.last_sequence, clock.now())
    data, pending = _envelope_bytes(home, media)
    checked = check_envelope(home, data, state, trusted, clock)
    audit.envelope = checked.envelope
    pending = _pending_for(home, checked, pending, clock)
    try:
        work = _Work(home, media, checked, trusted, clock, pending, progress, on_read)
        return work.run(base=state)
    except NotEnoughVolumesError as exc:
        audit.action, audit.outcome = pending_state.PARTIAL_ACTION, "refused"
        audit.details.update({"state": "kept", **(exc.report or {})})
        raise
    except VerificationError:
        pending_state.drop(home, pending.path)
        audit.details["state"] = "dropped"
        raise
    except BaseException:
        audit.details["state"] = "kept"
        raise


def _envelope_bytes(home: SpokeHome, media: Media) -> tuple[bytes, PendingImport | None]:
    """The envelope on the media or, failing that, the pending import the volumes continue."""
    if media.envelope is not None:
        return media.envelope, None
    found, _broken = pending_state.list_pending(home)
    matches = []
    for candidate in found:
        copy = candidate.read(pending_state.ENVELOPE_COPY) or b""
        try:  # only to choose the state: the copy is verified next, like any envelope
            names = {v.name for v in unverified_envelope(copy).volumes}
        except MediaError:
            continue
        if names.intersection(media.volumes):
            matches.append((copy, candidate))
    if len(matches) == 1:
        return matches[0]
    where = ", ".join(str(d) for d in media.dirs)
    if not matches:
        raise MediaError(
            f"{where}: no envelope.json, and no pending import that these volumes continue",
            hint="give the directory that holds envelope.json (and site.age) too",
        )
    raise MediaError(
        f"{where}: the volumes continue several pending imports",
        hint="give the directory that holds the bundle's envelope.json too",
    )


def _pending_for(
    home: SpokeHome, checked: CheckedEnvelope, pending: PendingImport | None, clock: Clock
) -> PendingImport:
    envelope = checked.envelope
    pending = pending or pending_state.find_pending(home, envelope.bundle_id)
    if pending is None:
        return pending_state.create_pending(
            home, envelope, checked.data, checked.sha256, clock.now()
        )
    if pending.envelope_sha256 != checked.sha256:
        raise MediaError(
            f"the media carry another envelope for bundle {envelope.bundle_id} than the one its "
            "pending import began with",
            hint="bring the media of the copy the import began with, or drop what it verified "
            f"with `airlock spoke import --abandon {envelope.bundle_id}`",
        )
    return pending


class _Work:
    """Steps 2–7 for one envelope and its state."""

    def __init__(
        self,
        home: SpokeHome,
        media: Media,
        checked: CheckedEnvelope,
        trusted: Trusted,
        clock: Clock,
        pending: PendingImport,
        progress: Progress,
        on_read: Callable[[int], None] | None,
    ) -> None:
        self.home, self.media, self.checked = home, media, checked
        self.trusted, self.clock, self.pending = trusted, clock, pending
        self.progress, self.on_read = progress, on_read
        self.envelope: Envelope = checked.envelope
        self._unlocked: list[bytes] | None = None

    def identities(self) -> list[bytes] | None:
        """The site's age identity, unlocked when first needed (None: an unencrypted bundle)."""
        if self.envelope.encrypted and self._unlocked is None:
            self._unlocked = [self.home.age_identity_key()]
        return self._unlocked

    def run(self, *, base: SpokeState) -> ImportResult:
        envelope, home = self.envelope, self.home
        staged = staged_paths(home)
        copy = self.pending.path / pending_state.SITE_PART_COPY
        stored = os.path.lexists(copy)  # verified by an earlier run: no medium is read again
        site = read_copy(copy) if stored else site_from_media(self.media, envelope, self.identities)
        identities = self.identities()
        verified = verify_repositories(site.metadata, self.trusted, home.site_id, staged)  # 3
        check_payload(envelope, verified, self.checked.rotated_to)
        expected = expected_blobs(home, envelope, verified, staged)
        indexes = bound_indexes(site, verified, expected)  # 4
        if not stored:
            self.pending.write(home, pending_state.SITE_PART_COPY, plain_site_tar(site))
            self.pending.write(home, WANTED_COPY, json.dumps(expected, sort_keys=True).encode())
        files, facts = self._assemble(site, indexes, expected, identities)  # 5, 6
        scratch = new_scratch(home, envelope.sequence)
        try:
            result = stage_verified(  # 7
                home,
                self.checked,
                verified,
                files,
                scratch,
                self.clock,
                base=base,
                staged=staged,
                facts=facts,
                link_blobs=True,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result.volumes = {"read": facts.read, "rebuilt": facts.rebuilt, "resumed": facts.resumed}
        self._after_commit(result)
        return result

    def _assemble(
        self,
        site: SitePart,
        indexes: dict[str, ChunkIndex],
        expected: Mapping[str, int],
        identities: list[bytes] | None,
    ) -> tuple[dict[str, Path], ReceiptFacts]:
        receipt_files = {
            sha: ReceiptFile(sha, index.length, index.digest(), len(index.chunks))
            for sha, index in indexes.items()
        }
        facts = ReceiptFacts(files=receipt_files)
        if not expected:  # nothing to carry (a revocation, or every version omitted)
            return {}, facts
        plan = AssemblyPlan(
            series=self.envelope.series,
            volumes=self.envelope.volumes,
            layout=site.layout,
            indexes=indexes,
            wanted=frozenset(expected),
        )
        assembly = private_dir(self.home, self.pending.assembly)
        with (
            write_faults(self.home, assembly, "write the verified chunks under"),
            Assembler(plan, assembly, identities, self.progress, self.on_read) as assembler,
        ):
            before = assembler.status()
            try:
                assembler.run(self.media.volumes)
            except NotEnoughVolumesError as exc:
                raise incomplete(exc, assembler.status()) from None
            after = assembler.status()
            files = assembler.complete()
        earlier = {v.record.name: v.verified for v in before.volumes}
        for volume in after.volumes:
            name = volume.record.name
            if volume.rebuilt:
                facts.rebuilt.append(name)
            elif volume.verified > earlier[name] or (
                volume.record.kind == "parity" and volume.state == "verified"
            ):
                facts.read.append(name)  # this run verified (more of) it
            elif earlier[name]:
                facts.resumed.append(name)  # an earlier run verified what it holds
        return files, facts

    def _after_commit(self, result: ImportResult) -> None:
        """Drops this import's state and any it superseded (best effort: it is committed)."""
        try:
            pending_state.drop(self.home, self.pending.path)
            pending_state.tidy(self.home, result.sequence, self.clock.now())
        except (AirlockError, OSError):
            pass  # the next import's tidy removes it (its sequence is now the site's last)


def incomplete(exc: NotEnoughVolumesError, status: AssemblyStatus) -> NotEnoughVolumesError:
    """The refusal of an incomplete import: the assembler's message and the per-volume report."""
    report = status_report(status)
    need = [v["label"] for v in report["volumes"] if v["state"] in ("missing", "damaged")]
    return NotEnoughVolumesError(
        exc.message,
        hint=f"{exc.hint}; `airlock spoke import --status` lists every volume"
        + (f" (missing or damaged: {len(need)})" if need else ""),
        report=report,
    )


def status_report(status: AssemblyStatus) -> dict[str, Any]:
    """The JSON form of an assembly's status (the refusal's report, ``--status``)."""
    return {
        "files_complete": status.files_complete,
        "files_total": status.files_total,
        "volumes": [
            {
                "name": v.record.name,
                "label": v.record.label,
                "kind": v.record.kind,
                "number": v.record.number,
                "of": v.record.of,
                "state": v.state,
                "chunks_verified": v.verified,
                "chunks": v.chunks,
                "rebuilt": v.rebuilt,
                "damage": list(v.damage),
            }
            for v in status.volumes
        ],
    }
