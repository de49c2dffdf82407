"""Signing and verifying a bundle's ``envelope.json``.

The envelope is the only plaintext part of a bundle. It is checked before
anything is decrypted::

    {"signed": <Envelope.to_dict()>, "signatures": [{"keyid": …, "sig": …}],
     "roots": {"director": [<1.root.json>, …]}}

The signature is over the canonical JSON of ``signed``, by keys that a trusted
root anchors (for hub bundles: the Director root's envelope keys; for metrics
bundles: the site key registered at the hub). The optional, unsigned ``roots``
member carries the Director root chain (:mod:`airlock.bundles.root_chain`,
which checks its shape); this module only passes it through.
"""

from __future__ import annotations

import json
from typing import Any

from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.errors import MediaError, SignatureError
from airlock.bundles.models import Envelope

ENVELOPE_FILE = "envelope.json"
MAX_ENVELOPE_BYTES = 1 << 20
ROOTS_MEMBER = "roots"


def sign_envelope(
    envelope: Envelope, signers: list[Signer], roots: dict[str, Any] | None = None
) -> bytes:
    """Returns the bytes of ``envelope.json``: the envelope signed by every signer.

    ``roots`` (``{"director": [root documents]}``) is added unsigned when given.
    """
    payload = canonical_bytes(envelope.to_dict())
    signatures = [signer.sign(payload).to_dict() for signer in signers]
    doc: dict[str, Any] = {"signed": envelope.to_dict(), "signatures": signatures}
    if roots is not None:
        doc[ROOTS_MEMBER] = roots
    return pretty_bytes(doc)


def envelope_roots(data: bytes) -> Any:
    """The raw, unsigned ``roots`` member of ``envelope.json`` bytes (None: absent).

    Raises:
        MediaError: not a well-formed envelope file.
    """
    parse_signed_envelope(data)
    return json.loads(data).get(ROOTS_MEMBER)


def parse_signed_envelope(data: bytes) -> tuple[dict[str, Any], list[Signature]]:
    """Splits ``envelope.json`` bytes into the signed part and its signatures.

    Raises:
        MediaError: not a well-formed envelope file.
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise MediaError("envelope.json is implausibly large; refusing to parse it")
    try:
        doc = json.loads(data)
        signed = doc["signed"]
        signatures = [Signature.from_dict(dict(s)) for s in doc["signatures"]]
        if not isinstance(signed, dict):
            raise TypeError("signed is not an object")
        canonical_bytes(signed)  # what gets verified must have a canonical form (no floats)
    except (ValueError, KeyError, TypeError, RecursionError, FormatError) as exc:
        raise MediaError(
            f"envelope.json is not a valid Airlock envelope ({exc})",
            hint="the medium is damaged or this is not an Airlock bundle",
        ) from None
    return signed, signatures


DEFAULT_SIGNATURE_HINT = (
    "the bundle was altered or was not made by the hub this site trusts; "
    "ask the hub for a fresh export"
)


def verify_envelope(
    data: bytes, trusted_keys: dict[str, Key], threshold: int, hint: str = DEFAULT_SIGNATURE_HINT
) -> Envelope:
    """Verifies ``envelope.json`` against trusted keys and returns the envelope.

    Args:
        data: The raw bytes of ``envelope.json`` (untrusted).
        trusted_keys: Key id → public key of the keys allowed to sign it.
        threshold: How many distinct trusted keys must have signed.
        hint: What to do when the signature check fails.

    Raises:
        MediaError: the file is malformed.
        SignatureError: fewer than ``threshold`` trusted keys signed it.
    """
    signed, signatures = parse_signed_envelope(data)
    payload = canonical_bytes(signed)
    good: set[str] = set()
    for signature in signatures:
        key = trusted_keys.get(signature.keyid)
        if key is None or signature.keyid in good:
            continue
        try:
            key.verify_signature(signature, payload)
        except UnverifiedSignatureError:
            continue
        good.add(signature.keyid)
    if len(good) < threshold:
        raise SignatureError(
            f"the bundle envelope is not signed by a trusted key ({len(good)} of {threshold})",
            hint=hint,
        )
    return Envelope.from_dict(signed)
