"""How a TUF verification failure reads: ``tuf`` exceptions as Airlock errors, with hints."""

from __future__ import annotations

from tuf.api import exceptions as tuf_errors

from airlock.bundles.errors import (
    FreshnessError,
    IntegrityError,
    SignatureError,
    TrustError,
)

ALTERED_HINT = (
    "the bundle's metadata was altered or damaged after it was signed; do not use it, "
    "keep it for investigation and ask the hub for a new export"
)
UNTRUSTED_HINT = (
    "the hub's metadata is inconsistent or was signed with stolen online keys: use nothing "
    "it carries, keep the bundle for the security officers and ask the hub for a new export"
)
"""What to do when TUF metadata does not verify from the site's trusted roots."""


def translate_error(exc: Exception, repo: str) -> Exception:
    """The Airlock error for a ``tuf`` exception raised while verifying ``repo``'s metadata.

    Expiry and rollback are freshness errors, a missing threshold a signature
    error, wrong bytes an integrity error; anything else a trust error.
    """
    what = f"{repo.capitalize()} metadata"
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return FreshnessError(
            f"{what} has expired: {exc}",
            hint=(
                "the bundle was in transit longer than the site's budget; "
                "ask the hub for a new export"
            ),
        )
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return SignatureError(
            f"{what} is not signed by a threshold of trusted keys: {exc}",
            hint="the bundle was altered or the hub's keys are not the ones this site trusts; "
            "do not use it and ask the hub for a new export",
        )
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return FreshnessError(
            f"{what} would roll back to an older version: {exc}",
            hint="this is an old or replayed bundle; import the newest bundle from the hub",
        )
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):  # shorter, or other bytes
        return IntegrityError(
            f"{what} does not match its signed length or hash: {exc}", hint=ALTERED_HINT
        )
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):  # longer than signed
        return IntegrityError(
            f"{what} is longer than its signed (or allowed) length: {exc}", hint=ALTERED_HINT
        )
    if isinstance(exc, tuf_errors.DownloadError):
        return TrustError(
            f"{what} is incomplete in the bundle: {exc}",
            hint="the bundle is damaged or incomplete; export it again",
        )
    if isinstance(exc, tuf_errors.RepositoryError | ValueError | KeyError | TypeError):
        return TrustError(f"{what} does not verify: {exc}", hint=UNTRUSTED_HINT)
    return TrustError(
        f"{what} could not be verified ({type(exc).__name__}: {exc})", hint=UNTRUSTED_HINT
    )
