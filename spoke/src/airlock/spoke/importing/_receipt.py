"""The signed receipt of a successful import (``airlock-import-receipt/1``).

The import collects what it checked (:class:`ReceiptFacts`: which volumes it
read, rebuilt or resumed, and per file the signed SHA-256 and length and, in
format 2, the chunk index checked against the signed binding and how many
chunks). :func:`receipt_maker` opens the site's Ed25519 signing key before
anything is promoted, and returns the function the import's one transaction
calls to sign the receipt (:func:`airlock.bundles.audit.sign_receipt`) into
the details of its ``spoke.import`` audit entry. ``--receipt FILE`` writes the
same document to a new file (:func:`write_receipt_file`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlock.bundles import __version__
from airlock.bundles.audit import ImportReceipt, ReceiptFile, receipt_bytes, sign_receipt
from airlock.bundles.errors import ConflictError, UsageError
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import VerifiedMetadata
from airlock.spoke.site._home import SpokeHome

if TYPE_CHECKING:
    from airlock.spoke.importing._commit import ImportResult


@dataclass
class ReceiptFacts:
    """What an import read and checked, for its receipt.

    Attributes:
        read: Volumes (format 2) or payload parts (format 1) read and verified by this run.
        rebuilt: Data volumes rebuilt from parity.
        resumed: Volumes an earlier, interrupted run had verified.
        files: SHA-256 → the file as checked.
    """

    read: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    files: dict[str, ReceiptFile] = field(default_factory=dict)

    @classmethod
    def whole_files(cls, parts: list[str], expected: Mapping[str, int]) -> ReceiptFacts:
        """Format 1: the payload parts read, every file checked whole against its signed hash."""
        files = {sha: ReceiptFile(sha256=sha, length=length) for sha, length in expected.items()}
        return cls(read=list(parts), files=files)


def receipt_maker(
    home: SpokeHome,
    envelope: Envelope,
    envelope_sha256: str,
    envelope_keyids: tuple[str, ...],
    verified: VerifiedMetadata,
    facts: ReceiptFacts,
) -> Callable[[ImportResult, dt.datetime], dict[str, Any]]:
    """Opens the site signing key now; returns the function that signs the receipt at commit.

    Raises:
        SecretError: the site passphrase is missing or wrong.
    """
    signer = home.keystore().signer(home.signing_key())

    def make(result: ImportResult, now: dt.datetime) -> dict[str, Any]:
        receipt = ImportReceipt(
            site_id=home.site_id,
            bundle_id=envelope.bundle_id,
            sequence=envelope.sequence,
            kind=str(envelope.kind),
            format_version=envelope.format_version,
            envelope_sha256=envelope_sha256,
            airlock_version=__version__,
            imported_at=now,
            volumes={
                "read": tuple(sorted(facts.read)),
                "rebuilt": tuple(sorted(facts.rebuilt)),
                "resumed": tuple(sorted(facts.resumed)),
            },
            files=tuple(facts.files[sha] for sha in sorted(facts.files)),
            envelope_keyids=envelope_keyids,
            director_root_version=verified.director_root_version,
            image_root_version=verified.image_root_version,
            staged=tuple(result.staged),
        )
        return sign_receipt(receipt, signer)

    return make


def write_receipt_file(path: Path, document: Mapping[str, Any]) -> None:
    """Writes a receipt to a new file (0644); an existing file is never overwritten.

    Raises:
        ConflictError: ``path`` exists.
        UsageError: it cannot be written.
    """
    data = receipt_bytes(dict(document))
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise ConflictError(
            f"{path} already exists: a receipt is never overwritten",
            hint="name a new file; the receipt is also in the audit log "
            "(`airlock audit query --action spoke.import`)",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot write the receipt to {path}: {exc.strerror}",
            hint="name a file in a writable directory; the receipt is also in the audit log",
        ) from None
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
