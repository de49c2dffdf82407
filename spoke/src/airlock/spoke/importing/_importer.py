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

Any failure: the scratch directory is removed, blobs promoted in step 6 are
removed again, the database is untouched, and a "refused"/"failure" audit
entry names the step and the reason. A full disk or a read-only home is a
``StorageError`` (exit 7) naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path

from sqlmodel import Session, select

from airlock.bundles.audit import home_origin
from airlock.bundles.bundle import (
    HUB_KINDS,
    EnvelopePolicy,
    check_parts,
    read_envelope_file,
    read_payload,
    verify_envelope,
)
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
    GateError,
    IntegrityError,
    UsageError,
    VerificationError,
)
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import (
    DIRECTOR,
    REPOSITORIES,
    ROOT_FILE,
    VerifiedMetadata,
    verify_repositories,
)
from airlock.spoke.gate._gate import gate_bundle
from airlock.spoke.importing import _commit as import_commit
from airlock.spoke.importing import _records as import_records
from airlock.spoke.importing._attestations import check_import as check_attestations
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._storage import (
    import_lock,
    new_scratch,
    promote_blobs,
    storage_faults,
)
from airlock.spoke.importing._trust import check_payload, envelope_trust
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import STATE_ID, SpokeState, TrustedMetadataFile

CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far a bundle's creation time may be ahead of the local clock."""

IMPORTED_KINDS = HUB_KINDS
OMITTED_HINT = "import the earlier bundle first, or ask the hub for `airlock hub export --full`"


def import_bundle(home: SpokeHome, bundle_dir: Path, clock: Clock | None = None) -> ImportResult:
    """Verifies and stages one bundle; on any failure, changes nothing and audits why.

    Raises:
        AirlockError: the subclass names what failed (see the module docstring).
    """
    clock = clock or SystemClock()
    envelope: Envelope | None = None
    try:
        with import_lock(home, clock):  # removes what a crashed import left in HOME/tmp
            state, trusted = _load_state(home)
            envelope, rotated_to = _check_envelope(home, Path(bundle_dir), state, trusted, clock)
            return _verify_and_stage(
                home, Path(bundle_dir), envelope, trusted, clock, base=state, rotated_to=rotated_to
            )
    except Exception as exc:
        outcome = "refused" if isinstance(exc, VerificationError) else "failure"
        try:
            home.audit.record(
                "spoke.import",
                outcome,
                object=envelope.bundle_id if envelope else str(Path(bundle_dir).name),
                details={
                    "error": type(exc).__name__,
                    "message": exc.message if isinstance(exc, AirlockError) else "unexpected error",
                    "sequence": envelope.sequence if envelope else None,
                    **({"gate": exc.figures} if isinstance(exc, GateError) else {}),
                },
                when=clock.now(),
            )
        except AuditWriteError as audit_error:  # say what failed first, too
            if not isinstance(exc, AirlockError):
                raise
            raise AuditWriteError(
                f"{audit_error.message}; the import had failed: {exc.message}", audit_error.hint
            ) from None
        raise


def _load_state(home: SpokeHome) -> tuple[SpokeState, dict[str, dict[str, bytes]]]:
    with Session(home.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        if state is None:
            raise UsageError(f"{home.path} has no spoke state", hint="run `airlock spoke init`")
        trusted: dict[str, dict[str, bytes]] = {repo: {} for repo in REPOSITORIES}
        for row in session.exec(select(TrustedMetadataFile)):
            trusted[row.repository][row.name] = row.data
        session.expunge(state)
    return state, trusted


def _check_envelope(
    home: SpokeHome,
    bundle_dir: Path,
    state: SpokeState,
    trusted: dict[str, dict[str, bytes]],
    clock: Clock,
) -> tuple[Envelope, int | None]:
    """Step 1; returns the envelope and the Director root version its chain rotates to."""
    data = read_envelope_file(bundle_dir)  # lstat first, bounded, never blocks
    chain = envelope_trust(data, trusted[DIRECTOR][ROOT_FILE])
    envelope = verify_envelope(data, chain.keys, chain.threshold, kinds=IMPORTED_KINDS)
    rotation = chain.rotated_to is not None  # offline-signed: may reset what online keys set

    policy = EnvelopePolicy(
        kinds=IMPORTED_KINDS,
        site_id=home.site_id,
        incoming=True,
        noun="bundle",
        expired_hint="it was in transit longer than the site's budget; ask the hub for a new "
        "export",
        time_floor=dt.datetime.fromisoformat(state.time_floor),
        max_clock_skew=CLOCK_SKEW,
        last_sequence=state.last_sequence,
        require_encryption=home.require_encryption,
    )
    policy.check(envelope, clock.now(), rotation=rotation)
    return envelope, chain.rotated_to


def _verify_and_stage(
    home: SpokeHome,
    bundle_dir: Path,
    envelope: Envelope,
    trusted: dict[str, dict[str, bytes]],
    clock: Clock,
    *,
    base: SpokeState,
    rotated_to: int | None = None,
) -> ImportResult:
    # Step 2, before the identity is opened. The parts stay open: step 3 decrypts
    # from these descriptors, never by path again (a file swapped in meanwhile is not read).
    parts = check_parts(bundle_dir, list(envelope.parts))
    try:
        identities = [home.age_identity()] if envelope.encrypted else None
        with Session(home.engine) as session:
            staged_paths = import_records.staged_files(session)
        scratch = new_scratch(home, envelope.sequence)  # private (0700)
    except BaseException:
        parts.close()
        raise
    verified: list[VerifiedMetadata] = []

    def on_metadata(metadata: dict[str, bytes]) -> dict[str, int]:
        result = verify_repositories(metadata, trusted, home.site_id, staged_paths)
        check_payload(envelope, result, rotated_to)
        verified.append(result)
        return expected_blobs(home, envelope, verified[0], staged_paths)

    promoted: list[Path] = []
    try:
        unpacked = read_payload(parts, identities, scratch, on_metadata)  # closes the parts
        if not verified:
            raise VerificationError("the payload carried no metadata to verify")
        result = verified[0]
        site_log = import_records.SiteLog(
            home_origin(home.config), home.signing_key().public_key, home.engine
        )
        records = import_records.prepare(result, staged_paths, site_log)
        attested = check_attestations(home, result, unpacked.blobs, scratch, clock.now())  # 5a
        gate = gate_bundle(home, result, unpacked.blobs, scratch)  # 5b
        promote_blobs(home, unpacked.blobs, promoted)
        with storage_faults(home):  # a full disk or read-only home at commit: exit 7
            outcome = import_commit.commit_import(
                home,
                envelope,
                result,
                len(promoted),
                clock,
                attested.refs,
                gate,
                records,
                base=base,
                rotated_to=rotated_to,
            )
        return outcome
    except BaseException:
        parts.close()
        for path in promoted:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def expected_blobs(
    home: SpokeHome,
    envelope: Envelope,
    verified: VerifiedMetadata,
    staged_paths: Mapping[str, import_records.StagedFile],
) -> dict[str, int]:
    """The blobs the bundle must carry: every assigned file but those of omitted versions.

    A version the envelope lists as omitted must already be staged here with
    the same SHA-256 for every assigned file, its blobs in the blob store.

    Raises:
        IntegrityError: an omitted version is not staged here (or differs);
            the message names it, the hint says to import the earlier bundle
            or ask for a full export.
    """
    omitted = set(envelope.omitted)
    expected: dict[str, int] = {}
    missing: set[str] = set()
    for target in verified.targets:
        ref = f"{target.model}@{target.version}"
        if ref not in omitted:
            expected[target.sha256] = target.length
        elif staged_paths.get(target.path) != (target.model, target.version, target.sha256) or (
            not (home.blob_dir / target.sha256).is_file()
        ):
            missing.add(ref)
    if missing:
        raise IntegrityError(
            f"this {envelope.kind} bundle leaves out the files of {', '.join(sorted(missing))}, "
            "which this site does not hold (not staged, or staged with other files)",
            hint=OMITTED_HINT,
        )
    return expected
