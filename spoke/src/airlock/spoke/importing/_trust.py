"""What an import trusts before and after decryption: envelope keys, root rotation, binding.

Nothing here lets one online key lock a site out (design brief, "Freshness
in an air gap", rule 5):

* :func:`envelope_trust` (step 1): walks the Director root chain that the
  envelope carries (:mod:`airlock.bundles.tuf._root_chain`) from the trusted
  Director root and returns the envelope keys of the newest root reached.
  A bundle whose chain advances the trusted root carries an offline-signed
  rotation: it is exempt from the sequence and time-floor refusals, and its
  commit resets both to its own signed values (:attr:`EnvelopeTrust.rotated_to`).
* :func:`check_payload` (step 4, as soon as TUF verified the metadata): the
  envelope's claims must equal those the Director timestamp signed
  (:func:`airlock.bundles.bundle._binding.check_bound`), and TUF must have walked
  the Director root at least as far as the envelope's chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root

from airlock.bundles.bundle import check_bound, envelope_roots
from airlock.bundles.errors import TrustError
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import VerifiedMetadata, envelope_keys, parse_root_chain, walk_root_chain


@dataclass(frozen=True)
class EnvelopeTrust:
    """The keys to verify an envelope with, and whether its root chain rotates the site's.

    Attributes:
        keys: Key id → envelope key of the newest verified Director root.
        threshold: How many of them must sign.
        rotated_to: The newer Director root version the envelope's chain
            reached, or None when the chain does not advance the trusted root.
    """

    keys: dict[str, Key]
    threshold: int
    rotated_to: int | None


def envelope_trust(data: bytes, trusted_director_root: bytes) -> EnvelopeTrust:
    """Walks the envelope's Director root chain and returns the envelope keys to use.

    Args:
        data: The raw bytes of ``envelope.json`` (untrusted).
        trusted_director_root: The site's trusted Director ``root.json``.

    Raises:
        MediaError: the envelope or its ``roots`` is malformed.
        TrustError, SignatureError: the chain does not verify from the trusted root.
    """
    trusted = Metadata[Root].from_bytes(trusted_director_root).signed
    newest = walk_root_chain(trusted, parse_root_chain(envelope_roots(data)))
    keys, threshold = envelope_keys(newest)
    rotated = newest.version if newest.version > trusted.version else None
    return EnvelopeTrust(keys, threshold, rotated)


def check_payload(envelope: Envelope, verified: VerifiedMetadata, rotated_to: int | None) -> None:
    """Checks the verified payload metadata against what the envelope states.

    Raises:
        IntegrityError: an envelope claim is missing from, or differs from,
            the verified Director timestamp's ``x-airlock-bundle``.
        TrustError: the envelope carried a Director root rotation that the
            payload's TUF metadata does not reach.
    """
    check_bound(envelope, verified.bundle_claims)
    if rotated_to is not None and verified.director_root_version < rotated_to:
        raise TrustError(
            f"the envelope carries Director root version {rotated_to}, but the payload's "
            f"Director metadata verifies only up to version {verified.director_root_version}",
            hint="the bundle is inconsistent; do not use it and ask the hub for a new export",
        )
