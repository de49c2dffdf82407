"""The bundle on media: the signed ``envelope.json``, the policy every receiver applies to
it, its binding to what a second key signed inside, and the streaming, strictly unpacked
age-encrypted payload.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.bundle._binding import check_bound, envelope_claims
from airlock.bundles.bundle._envelope import (
    ENVELOPE_FILE,
    HUB_KINDS,
    MAX_ENVELOPE_BYTES,
    envelope_roots,
    parse_envelope_document,
    parse_signed_envelope,
    read_envelope_file,
    sign_envelope,
    unverified_envelope,
    verify_envelope,
)
from airlock.bundles.bundle._inspect import inspect_bundle
from airlock.bundles.bundle._media import (
    SITES_DIR,
    LocatedBundle,
    VolumeOnMedia,
    envelope_dirs,
    locate_bundle,
)
from airlock.bundles.bundle._parts import check_parts, open_parts
from airlock.bundles.bundle._payload import UnpackedPayload, read_payload
from airlock.bundles.bundle._policy import EnvelopePolicy
from airlock.bundles.bundle._streams import DurableWriter, hash_file
from airlock.bundles.bundle._unpack import PayloadLimits
from airlock.bundles.bundle._writer import BlobSource, write_payload

__all__ = [
    "ENVELOPE_FILE",
    "HUB_KINDS",
    "MAX_ENVELOPE_BYTES",
    "SITES_DIR",
    "BlobSource",
    "DurableWriter",
    "EnvelopePolicy",
    "LocatedBundle",
    "PayloadLimits",
    "UnpackedPayload",
    "VolumeOnMedia",
    "check_bound",
    "check_parts",
    "envelope_claims",
    "envelope_dirs",
    "envelope_roots",
    "hash_file",
    "inspect_bundle",
    "locate_bundle",
    "open_parts",
    "parse_envelope_document",
    "parse_signed_envelope",
    "read_envelope_file",
    "read_payload",
    "sign_envelope",
    "unverified_envelope",
    "verify_envelope",
    "write_payload",
]
