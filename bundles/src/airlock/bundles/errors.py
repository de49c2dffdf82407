"""The one error tree of Airlock.

Every error carries a message (what failed) and a hint (what to do about it),
and maps to a documented exit code at the CLI's single catch point::

    AirlockError                      exit 1   anything else that went wrong
    ├── UsageError                    exit 3   the operator asked for something invalid
    │   ├── NotFoundError             exit 3   a named site, model, key or home does not exist
    │   └── ConflictError             exit 3   it already exists / would overwrite something
    ├── SecretError                   exit 4   a passphrase or PIN is missing or wrong
    ├── MediaError                    exit 5   bad media or transport: unreadable, missing parts
    │   ├── MissingFileError          exit 5   an input file or directory named is absent
    │   └── NotEnoughVolumesError     exit 9   volumes missing or damaged beyond what parity
    │                                          rebuilds: bring the named media (the import
    │                                          resumes; names them, says how many more)
    ├── AuditWriteError               exit 6   the audit log could not be written: nothing was done
    ├── StorageError                  exit 7   the disk is full, or the home is read-only or
    │                                          not writable: nothing was changed
    ├── SchemaVersionError            exit 8   the home's database schema is older than this
    │                                          release (upgrade it) or newer: nothing was changed
    └── VerificationError             exit 10  untrusted input failed verification
        ├── SignatureError            exit 11  a signature or threshold does not verify
        ├── IntegrityError            exit 12  sizes or hashes do not match the signed ones
        ├── UnsafeArchiveError        exit 13  the payload archive breaks the strict unpack rules
        ├── FreshnessError            exit 14  expired, clock before the time floor, replay
        ├── WrongSiteError            exit 15  the bundle or its metadata is for another site
        ├── TrustError                exit 16  TUF metadata does not verify from the trusted roots
        ├── DecryptionError           exit 17  the payload cannot be decrypted with this identity
        ├── GateError                 exit 18  a model failed the site's validation gate
        ├── AttestationError          exit 19  in-toto layout or links do not verify
        └── LogConsistencyError       exit 22  an audit log does not extend the checkpoint
                                               its witness saw before (a rewritten log)

`StaleBundleError` (a `FreshnessError`) is the "older than what we have"
case: it changes nothing and says so.
"""

from __future__ import annotations

from typing import Any


class AirlockError(Exception):
    """Base of every Airlock error.

    Attributes:
        message: What failed, in one sentence.
        hint: What the operator can do about it.
        exit_code: The documented CLI exit code for this kind of error.
        report: A command's own JSON report of what it checked (``"ok": false``
            and its findings); under ``--json`` the CLI prints it in one
            document with the error object instead of the error object alone.
    """

    exit_code = 1
    kind = "error"
    report: dict[str, Any] | None = None

    def __init__(
        self, message: str, hint: str = "", *, report: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.report = report

    def to_dict(self) -> dict[str, Any]:
        """Returns the error as a JSON-ready dict (for `--json` output and audit entries)."""
        return {
            "error": self.kind,
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }

    def __str__(self) -> str:
        return self.message


class UsageError(AirlockError):
    """The operator asked for something that cannot be done as asked."""

    exit_code = 3
    kind = "usage"


class NotFoundError(UsageError):
    """A named site, model, key, rollout or home directory does not exist.

    A missing input *file* is a :class:`MissingFileError` (exit 5), not this.
    """


class ConflictError(UsageError):
    """The thing already exists, or the request would overwrite something immutable."""


class SecretError(AirlockError):
    """A passphrase or PIN is missing or wrong."""

    exit_code = 4
    kind = "secret"


class MediaError(AirlockError):
    """Bad media or transport: unreadable files, missing parts, not a bundle."""

    exit_code = 5
    kind = "media"


class MissingFileError(MediaError):
    """An input file or directory named on the command line does not exist (exit 5)."""

    DEFAULT_HINT = "check the path (relative paths start at the current directory) and that "
    DEFAULT_HINT += "the medium is mounted"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint or self.DEFAULT_HINT)


class NotEnoughVolumesError(MediaError):
    """Data volumes are missing or damaged and the parity cannot rebuild them.

    The message names every missing or damaged volume by number and file name and
    says how many more volumes are needed (any of those named will do). Exit 9
    ("incomplete"): what was verified stays in the spoke's resumable import
    state, and importing again with the named media continues.
    """

    exit_code = 9
    kind = "incomplete"


class AuditWriteError(AirlockError):
    """The audit event could not be written, so the action did not happen."""

    exit_code = 6
    kind = "audit"


class StorageError(AirlockError):
    """Local storage refused a write: the disk is full, or the home is read-only or not writable.

    The message names the path and the cause; whatever was written is removed again.
    """

    exit_code = 7
    kind = "storage"


class SchemaVersionError(AirlockError):
    """The home's database schema is not the one this release's migration history ends at.

    Older (including a database made before schema versions existed): the hint
    names ``airlock <role> db upgrade``. Newer (a revision this release does not
    know): the hint says to install the release that upgraded it. The refused
    open changed nothing.
    """

    exit_code = 8
    kind = "schema"


class VerificationError(AirlockError):
    """Untrusted input failed verification. Nothing it carried was used."""

    exit_code = 10
    kind = "verification"


class SignatureError(VerificationError):
    """A signature is missing, invalid, or below the threshold."""

    exit_code = 11


class IntegrityError(VerificationError):
    """A size or hash does not match the signed value."""

    exit_code = 12


class UnsafeArchiveError(VerificationError):
    """The payload archive contains an entry the strict unpacker refuses."""

    exit_code = 13


class FreshnessError(VerificationError):
    """Expired metadata, a clock behind the time floor, or a replayed bundle."""

    exit_code = 14


class StaleBundleError(FreshnessError):
    """The bundle is not newer than the state already imported; nothing changed."""


class WrongSiteError(VerificationError):
    """The bundle, or metadata inside it, was made for another site."""

    exit_code = 15


class TrustError(VerificationError):
    """TUF metadata does not verify from the trusted roots."""

    exit_code = 16


class DecryptionError(VerificationError):
    """The payload cannot be decrypted (wrong identity, tampered or truncated ciphertext)."""

    exit_code = 17


class GateError(VerificationError):
    """A model version failed the site's validation gate (accuracy, latency, compatibility).

    Attributes:
        figures: What the gate measured and the signed thresholds, for the audit entry.
    """

    exit_code = 18

    def __init__(self, message: str, hint: str = "", figures: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.figures: dict[str, Any] = dict(figures or {})


class AttestationError(VerificationError):
    """A model version's in-toto supply-chain attestations do not verify (or are missing)."""

    exit_code = 19


class LogConsistencyError(VerificationError):
    """A site's audit checkpoint does not extend the one the hub witnessed before.

    The site's log was rewritten (or truncated) after the hub acknowledged it,
    or the proof the site sent does not verify.
    """

    exit_code = 22


EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "error": AirlockError.exit_code,
    "click usage": 2,
    "usage": UsageError.exit_code,
    "secret": SecretError.exit_code,
    "media": MediaError.exit_code,
    "audit": AuditWriteError.exit_code,
    "storage": StorageError.exit_code,
    "schema": SchemaVersionError.exit_code,
    "incomplete": NotEnoughVolumesError.exit_code,
    "verification": VerificationError.exit_code,
    "signature": SignatureError.exit_code,
    "integrity": IntegrityError.exit_code,
    "unsafe archive": UnsafeArchiveError.exit_code,
    "freshness": FreshnessError.exit_code,
    "wrong site": WrongSiteError.exit_code,
    "trust": TrustError.exit_code,
    "decryption": DecryptionError.exit_code,
    "gate": GateError.exit_code,
    "attestation": AttestationError.exit_code,
    "log consistency": LogConsistencyError.exit_code,
}
"""Documented exit codes, also rendered in docs/exit-codes.md."""


def error_kind(exit_code: int) -> str:
    """The documented name of an exit code (``"integrity"`` for 12), ``"error"`` if unknown."""
    for kind, code in EXIT_CODES.items():
        if code == exit_code:
            return kind
    return "error"


def error_document(exc: AirlockError) -> dict[str, Any]:
    """The JSON error document a ``--json`` command prints on standard output.

    ``{"error": {"kind", "code", "type", "message", "hint"}}`` — ``kind`` and
    ``code`` are a row of docs/exit-codes.md.
    """
    return {
        "error": {
            "kind": error_kind(exc.exit_code),
            "code": exc.exit_code,
            "type": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint,
        }
    }
