"""Binding a bundle's envelope to what a second key signed inside its payload.

The envelope is signed by the hub's online envelope key alone. What it states
about the bundle — id, site, sequence, kind, creation and expiry time — must
equal the ``x-airlock-bundle`` field of the site's Director timestamp in the
payload (:func:`airlock.bundles.tuf._repo.bundle_claims`), which the online
``director-timestamp`` key signed and TUF verified. A holder of the envelope
key alone therefore cannot relabel a genuine payload with another sequence
(freezing the site), site or kind.

:func:`check_bound` is pure: it takes the verified envelope and the verified
claims and raises or returns nothing.
"""

from __future__ import annotations

from typing import Any

from airlock.bundles.errors import IntegrityError
from airlock.bundles.models._envelope import Envelope
from airlock.bundles.tuf._repo import BUNDLE_FIELD, bundle_claims

BINDING_HINT = (
    "the envelope was signed again around a payload made for another bundle (a misused or "
    "stolen envelope key); do not use this bundle, tell the security officer and ask the hub "
    "for a new export"
)


def envelope_claims(envelope: Envelope) -> dict[str, Any]:
    """What ``envelope`` states, in the form of ``x-airlock-bundle``."""
    return bundle_claims(
        bundle_id=envelope.bundle_id,
        site_id=envelope.site_id,
        sequence=envelope.sequence,
        kind=str(envelope.kind),
        created=envelope.created,
        expires=envelope.expires,
    )


def check_bound(envelope: Envelope, signed_claims: Any) -> None:
    """Checks every claim of ``envelope`` against the verified Director timestamp's.

    Args:
        envelope: The envelope, verified with the envelope key.
        signed_claims: The ``x-airlock-bundle`` value of the verified Director
            timestamp (None when it has none).

    Raises:
        IntegrityError: the claims are missing, or one differs (the message
            names the field and both values).
    """
    if not isinstance(signed_claims, dict):
        raise IntegrityError(
            f"the verified Director timestamp signs no bundle claims ({BUNDLE_FIELD}), "
            "so nothing confirms what the envelope states",
            hint=BINDING_HINT,
        )
    for name, stated in envelope_claims(envelope).items():
        signed = signed_claims.get(name)
        if signed != stated or type(signed) is not type(stated):
            raise IntegrityError(
                f"the envelope states {name} {stated!r}, but the verified Director timestamp "
                f"signed {name} {signed!r}",
                hint=BINDING_HINT,
            )
