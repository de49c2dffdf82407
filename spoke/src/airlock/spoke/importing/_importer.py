"""Importing a bundle at the spoke: verify everything, then stage atomically.

The steps, each failing closed (the numbers appear in error messages and
the site admin's guide):

1. Envelope: signature by the hub's envelope key anchored in the newest
   Director root that the envelope's root chain reaches from the trusted one
   (:mod:`airlock.spoke.importing._trust`); site id; clock against the time
   floor; expiry; sequence (a bundle not newer than the last one changes
   nothing); kind (``full``, ``delta`` or ``revocation``); encryption policy.
   A bundle whose chain advances the trusted Director root (an offline
   rotation) is exempt from the time-floor and sequence refusals.
2. Payload parts: exactly the listed files, regular files with the signed
   sizes and SHA-256 — all before any decryption. They stay open
   (:func:`~airlock.bundles.bundle._payload.check_parts`).
3. Decrypt from those same descriptors (never by path again) and strictly
   unpack into a private (0700) scratch directory, streaming
   (:mod:`airlock.spoke.importing._storage`; scratch a crashed import left is
   removed when the import lock is taken).
4. TUF: both repositories verified with ngclient from the trusted metadata
   (runs as soon as the metadata section of the payload has been read, so
   that every blob is then checked against its signed length and hash).
   The envelope's bundle id, site, sequence, kind, created and expires must
   equal what the verified Director timestamp signed (``x-airlock-bundle``).
5. Director/Image agreement and site id (part of step 4's core). A version
   the envelope lists as ``omitted`` (a delta or revocation bundle leaves out
   files the site already holds) must be staged here with the same files;
   the bundle must carry every other assigned file. The signed rollout plans
   and revocations are parsed, and the hub's return path with the checkpoint
   it acknowledged is checked against this site's own audit log
   (:mod:`airlock.spoke.importing._records`).
5a. in-toto: every version to be newly staged that carries a layout is
   verified against the layout keys the verified Image root anchors; a site
   with ``[policy] require_attestations`` refuses versions without one
   (:mod:`airlock.spoke.importing._attestations`).
5b. Validation gate: every version to be newly staged runs on its signed
   validation set in onnxruntime and is checked against its signed
   thresholds, runtime compatibility and dependencies (:mod:`airlock.spoke.gate._gate`).
6. Stage: promote blobs into the content-addressed store, then one database
   transaction records the new trusted metadata, sequence, time floor (it
   only advances to the bundle's signed creation time, never to the local
   clock; a root rotation resets sequence and floor to the bundle's own),
   assignments, staged models, rollout plans (with their change
   authorisations), revoked versions, the hub's return path, the audit entry and the
   ``bundle.imported`` event (:mod:`airlock.spoke.importing._commit`).

The steps shared with format 2 (envelope, audit, expected blobs, staging)
live in :mod:`airlock.spoke.importing._steps`; a format-2 bundle (volumes)
goes through :mod:`airlock.spoke.importing._volumes_import`.

Any failure: the scratch directory is removed, blobs promoted in step 6 are
removed again, the database is untouched, and a "refused"/"failure" audit
entry names the step and the reason. A full disk or a read-only home is a
``StorageError`` (exit 7) naming the path and the cause.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from airlock.bundles.bundle import check_parts, read_envelope_file, read_payload
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import VerificationError
from airlock.bundles.tuf import VerifiedMetadata, verify_repositories
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._receipt import ReceiptFacts
from airlock.spoke.importing._steps import (
    CheckedEnvelope,
    Trusted,
    audited_import,
    check_envelope,
    expected_blobs,
    load_state,
    stage_verified,
    staged_paths,
)
from airlock.spoke.importing._storage import import_lock, new_scratch
from airlock.spoke.importing._trust import check_payload
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import SpokeState


def import_format_1(home: SpokeHome, bundle_dir: Path, clock: Clock | None = None) -> ImportResult:
    """Verifies and stages one format-1 bundle; on any failure, changes nothing and audits why.

    Raises:
        AirlockError: the subclass names what failed (see the module docstring).
    """
    clock = clock or SystemClock()
    # The lock removes what a crashed import left in HOME/tmp.
    with audited_import(home, clock, Path(bundle_dir).name) as audit, import_lock(home, clock):
        state, trusted = load_state(home)
        data = read_envelope_file(Path(bundle_dir))  # lstat first, bounded, never blocks
        checked = check_envelope(home, data, state, trusted, clock)
        audit.envelope = checked.envelope
        return _verify_and_stage(home, Path(bundle_dir), checked, trusted, clock, base=state)


def _verify_and_stage(
    home: SpokeHome,
    bundle_dir: Path,
    checked: CheckedEnvelope,
    trusted: Trusted,
    clock: Clock,
    *,
    base: SpokeState,
) -> ImportResult:
    envelope = checked.envelope
    # Step 2, before the identity is opened. The parts stay open: step 3 decrypts
    # from these descriptors, never by path again (a file swapped in meanwhile is not read).
    parts = check_parts(bundle_dir, list(envelope.parts))
    try:
        identities = [home.age_identity()] if envelope.encrypted else None
        staged = staged_paths(home)
        scratch = new_scratch(home, envelope.sequence)  # private (0700)
    except BaseException:
        parts.close()
        raise
    verified: list[VerifiedMetadata] = []
    expected: dict[str, int] = {}

    def on_metadata(metadata: dict[str, bytes]) -> dict[str, int]:
        result = verify_repositories(metadata, trusted, home.site_id, staged)
        check_payload(envelope, result, checked.rotated_to)
        verified.append(result)
        expected.update(expected_blobs(home, envelope, verified[0], staged))
        return expected

    try:
        unpacked = read_payload(parts, identities, scratch, on_metadata)  # closes the parts
        if not verified:
            raise VerificationError("the payload carried no metadata to verify")
        facts = ReceiptFacts.whole_files([p.name for p in envelope.parts], expected)
        return stage_verified(
            home,
            checked,
            verified[0],
            unpacked.blobs,
            scratch,
            clock,
            base=base,
            staged=staged,
            facts=facts,
        )
    finally:
        parts.close()
        shutil.rmtree(scratch, ignore_errors=True)
