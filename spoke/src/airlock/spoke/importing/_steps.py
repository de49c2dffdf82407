"""The steps every import shares, whatever the bundle format: envelope, audit, stage.

The format-1 path (:mod:`airlock.spoke.importing._importer`) and the format-2
path (:mod:`airlock.spoke.importing._volumes_import`) differ only in how they
get from a verified envelope to verified metadata and verified files. Both use:

* :func:`load_state` and :func:`check_envelope` (step 1: the envelope's
  signature, anchored in the Director root chain, and the site's policy);
* :class:`AuditedImport` — whatever fails is audited once as a refused
  (verification) or failed (anything else) ``spoke.import``;
* :func:`expected_blobs` (step 5: every assigned file but those of omitted
  versions, which must be staged here already);
* :func:`stage_verified` (steps 5–6: records, in-toto, the validation gate,
  promotion into the blob store, and the one transaction, with the signed
  import receipt in its audit entry).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key
from sqlmodel import Session, select

from airlock.bundles.audit import home_origin
from airlock.bundles.bundle import (
    HUB_KINDS,
    EnvelopePolicy,
    parse_signed_envelope,
    verify_envelope,
)
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
    GateError,
    IntegrityError,
    UsageError,
    VerificationError,
)
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import DIRECTOR, REPOSITORIES, ROOT_FILE, VerifiedMetadata
from airlock.spoke.gate._gate import gate_bundle
from airlock.spoke.importing import _commit as import_commit
from airlock.spoke.importing import _records as import_records
from airlock.spoke.importing._attestations import check_import as check_attestations
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._receipt import ReceiptFacts, receipt_maker
from airlock.spoke.importing._storage import promote_blobs, storage_faults
from airlock.spoke.importing._trust import envelope_trust
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import STATE_ID, SpokeState, TrustedMetadataFile

CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far a bundle's creation time may be ahead of the local clock."""

IMPORTED_KINDS = HUB_KINDS
OMITTED_HINT = "import the earlier bundle first, or ask the hub for `airlock hub export --full`"
IMPORT_ACTION = "spoke.import"

Trusted = dict[str, dict[str, bytes]]
"""Repository → metadata file name → bytes: the site's trusted TUF metadata."""


@dataclass(frozen=True)
class CheckedEnvelope:
    """An envelope that passed step 1.

    Attributes:
        envelope: The verified envelope.
        data: Its bytes, as read.
        sha256: SHA-256 of those bytes.
        rotated_to: The Director root version its chain rotates to (None: no rotation).
        keyids: The trusted envelope keys whose signatures verified.
    """

    envelope: Envelope
    data: bytes
    sha256: str
    rotated_to: int | None
    keyids: tuple[str, ...]


@dataclass
class AuditedImport:
    """What the failure audit entry names; fill it in as the import learns it."""

    fallback_object: str
    envelope: Envelope | None = None
    action: str = "spoke.import"
    """The entry's action (an incomplete format-2 import: ``spoke.import.partial``)."""
    outcome: str | None = None
    """The entry's outcome (None: refused for a VerificationError, else failure)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra details for the failure entry (e.g. what became of a resumable state)."""


@contextlib.contextmanager
def audited_import(home: SpokeHome, clock: Clock, fallback_object: str) -> Iterator[AuditedImport]:
    """Audits whatever escapes the block as one refused/failed ``spoke.import``, then re-raises.

    Raises:
        AuditWriteError: the failure could not be audited (its message also says what
            had failed first).
    """
    audit = AuditedImport(fallback_object)
    try:
        yield audit
    except Exception as exc:
        envelope = audit.envelope
        outcome = audit.outcome or ("refused" if isinstance(exc, VerificationError) else "failure")
        try:
            home.audit.record(
                audit.action,
                outcome,
                object=envelope.bundle_id if envelope else audit.fallback_object,
                details={
                    "error": type(exc).__name__,
                    "message": exc.message if isinstance(exc, AirlockError) else "unexpected error",
                    "sequence": envelope.sequence if envelope else None,
                    **({"gate": exc.figures} if isinstance(exc, GateError) else {}),
                    **audit.details,
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


def load_state(home: SpokeHome) -> tuple[SpokeState, Trusted]:
    """The spoke's state row and trusted metadata.

    Raises:
        UsageError: the home has no spoke state.
    """
    with Session(home.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        if state is None:
            raise UsageError(f"{home.path} has no spoke state", hint="run `airlock spoke init`")
        trusted: Trusted = {repo: {} for repo in REPOSITORIES}
        for row in session.exec(select(TrustedMetadataFile)):
            trusted[row.repository][row.name] = row.data
        session.expunge(state)
    return state, trusted


def check_envelope(
    home: SpokeHome, data: bytes, state: SpokeState, trusted: Trusted, clock: Clock
) -> CheckedEnvelope:
    """Step 1: the envelope's signature (root chain walked from the trusted root) and policy.

    Raises:
        MediaError, SignatureError, TrustError: the envelope does not verify.
        FreshnessError, WrongSiteError, UsageError: the site's policy refuses it.
    """
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
    digest = hashlib.sha256(data).hexdigest()
    return CheckedEnvelope(envelope, data, digest, chain.rotated_to, _keyids(data, chain.keys))


def _keyids(data: bytes, keys: Mapping[str, Key]) -> tuple[str, ...]:
    """The trusted keys whose signatures over the (already verified) envelope verify."""
    signed, signatures = parse_signed_envelope(data)
    payload = canonical_bytes(signed)
    good: list[str] = []
    for signature in signatures:
        key = keys.get(signature.keyid)
        if key is None or signature.keyid in good:
            continue
        with contextlib.suppress(UnverifiedSignatureError):
            key.verify_signature(signature, payload)
            good.append(signature.keyid)
    return tuple(sorted(good))


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


def staged_paths(home: SpokeHome) -> dict[str, import_records.StagedFile]:
    """Target path → staged file of every staged version (read before verification)."""
    with Session(home.engine) as session:
        return import_records.staged_files(session)


def stage_verified(
    home: SpokeHome,
    checked: CheckedEnvelope,
    verified: VerifiedMetadata,
    blobs: Mapping[str, Path],
    scratch: Path,
    clock: Clock,
    *,
    base: SpokeState,
    staged: Mapping[str, import_records.StagedFile],
    facts: ReceiptFacts,
    link_blobs: bool = False,
) -> ImportResult:
    """Steps 5–6 once every file is verified: records, in-toto, gate, promote, one transaction.

    Args:
        home: The spoke home.
        checked: The verified envelope.
        verified: The verified TUF metadata.
        blobs: SHA-256 → the verified file (renamed into the blob store on success).
        scratch: A private scratch directory (in-toto and the gate work below it).
        clock: The clock.
        base: The state row the verification started from.
        staged: :func:`staged_paths` as read before verification.
        facts: What the import checked, for the signed receipt.
        link_blobs: Hard-link the blobs into the store instead of renaming them (their
            source, a resumable state, stays whole if the commit fails).

    Raises:
        AirlockError: the subclass names the step that failed; blobs promoted here
            are removed again and the database is unchanged.
    """
    site_log = import_records.SiteLog(
        home_origin(home.config), home.signing_key().public_key, home.engine
    )
    records = import_records.prepare(verified, staged, site_log)
    attested = check_attestations(home, verified, blobs, scratch, clock.now())  # 5a
    gate = gate_bundle(home, verified, blobs, scratch)  # 5b
    # Opens the site key before anything is promoted.
    receipt = receipt_maker(home, checked.envelope, checked.sha256, checked.keyids, verified, facts)
    promoted: list[Path] = []
    try:
        promote_blobs(home, blobs, promoted, link=link_blobs)
        with storage_faults(home):  # a full disk or read-only home at commit: exit 7
            return import_commit.commit_import(
                home,
                checked.envelope,
                verified,
                len(promoted),
                clock,
                attested.refs,
                gate,
                records,
                base=base,
                rotated_to=checked.rotated_to,
                receipt=receipt,
            )
    except BaseException:
        for path in promoted:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
