"""Witness cosignatures on audit checkpoints (C2SP ``tlog-cosignature``, ``cosignature/v1``).

The hub witnesses each site's audit log: when it has checked that a site's new
checkpoint extends the one it saw before, it adds its own signature line to
the site's signed note. The line is a C2SP timestamped cosignature::

    — airlock/hub/hub-1 <base64(key ID || 8-byte big-endian time || Ed25519 sig)>

with key ID ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]`` and
the signature over ``"cosignature/v1\\ntime <unix seconds>\\n" + note text``.
Because the key ID differs from a plain note signature's, the site's own key
still opens the cosigned note (:func:`airlock.bundles.audit._checkpoint.open_note`
ignores lines of other keys), and a cosignature cannot be replayed as a
checkpoint signature or the other way round.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import struct

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.audit._checkpoint import (
    SIGNATURE_PREFIX,
    ed25519_public_bytes,
    parse_signature_line,
    split_note,
)
from airlock.bundles.errors import SignatureError

COSIGNATURE_TYPE = b"\x04"
COSIGNATURE_HEADER = "cosignature/v1\ntime {time}\n"


def cosignature_key_id(name: str, key: Key) -> bytes:
    """The 4-byte key ID of Ed25519 ``key`` as a ``cosignature/v1`` witness named ``name``."""
    material = name.encode("utf-8") + b"\n" + COSIGNATURE_TYPE + ed25519_public_bytes(key)
    return hashlib.sha256(material).digest()[:4]


def _message(text: str, timestamp: int) -> bytes:
    return (COSIGNATURE_HEADER.format(time=timestamp) + text).encode("utf-8")


def cosign(note: str, name: str, signer: Signer, now: dt.datetime) -> str:
    """Adds witness ``name``'s timestamped cosignature line to a signed note.

    The caller must have verified the note (and its consistency with what the
    witness saw before): a cosignature vouches for both.

    Raises:
        MediaError: ``note`` is not a signed note.
        SignatureError: the signer's key is not Ed25519.
    """
    text, _lines = split_note(note)
    timestamp = int(now.timestamp())
    key_id = cosignature_key_id(name, signer.public_key)
    signature = bytes.fromhex(signer.sign(_message(text, timestamp)).signature)
    encoded = base64.b64encode(key_id + struct.pack(">Q", timestamp) + signature).decode("ascii")
    return f"{note}{SIGNATURE_PREFIX}{name} {encoded}\n"


def verify_cosignature(note: str, name: str, key: Key) -> dt.datetime:
    """Checks witness ``name``'s cosignature on a note; returns when it was made.

    Raises:
        MediaError: not a signed note.
        SignatureError: no cosignature of this witness, or it does not verify.
    """
    text, lines = split_note(note)
    key_id = cosignature_key_id(name, key)
    for line in lines:
        line_name, line_key_id, rest = parse_signature_line(line)
        if line_name != name or line_key_id != key_id:
            continue
        if len(rest) != 8 + 64:
            raise SignatureError(f"the cosignature of {name!r} is malformed")
        (timestamp,) = struct.unpack(">Q", rest[:8])
        try:
            key.verify_signature(Signature(key.keyid, rest[8:].hex()), _message(text, timestamp))
        except UnverifiedSignatureError:
            raise SignatureError(
                f"the cosignature of witness {name!r} does not verify",
                hint="the checkpoint or its cosignature was altered; do not trust it",
            ) from None
        return dt.datetime.fromtimestamp(timestamp, dt.UTC)
    raise SignatureError(
        f"the checkpoint carries no cosignature of witness {name!r}",
        hint="the witness has not acknowledged this checkpoint",
    )
