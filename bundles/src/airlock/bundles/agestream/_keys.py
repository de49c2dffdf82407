"""age X25519 keys as text: ``age1…`` recipients and ``AGE-SECRET-KEY-1…`` identities.

An identity is the raw 32-byte X25519 private scalar (clamped by X25519 itself, as
age does); a recipient is the raw 32-byte public key. Error messages never repeat
the text they were given: it may be a secret key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from airlock.bundles.agestream._bech32 import Bech32Error, decode, encode
from airlock.bundles.errors import UsageError

RECIPIENT_HRP = "age"
IDENTITY_HRP = "AGE-SECRET-KEY-"
KEY_BYTES = 32

_RECIPIENT_HINT = "give the site's age recipient as printed by `age-keygen -y` (age1…)"
_IDENTITY_HINT = (
    "give an age identity file as written by `age-keygen` (a line AGE-SECRET-KEY-1…; "
    "lines starting with # are comments)"
)


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1…`` recipient.

    Raises:
        UsageError: not an X25519 age recipient (bad Bech32, wrong prefix or length).
    """
    text = text.strip()
    try:
        hrp, key = decode(text)
    except Bech32Error as exc:
        raise UsageError(f"not an age recipient: {exc}", _RECIPIENT_HINT) from None
    if hrp != RECIPIENT_HRP:
        raise UsageError(
            "not an age X25519 recipient (it must start with age1, in lower case)",
            _RECIPIENT_HINT,
        )
    if len(key) != KEY_BYTES:
        raise UsageError(f"an age recipient holds 32 bytes, this one {len(key)}", _RECIPIENT_HINT)
    return key


def _parse_identity_line(line: str) -> bytes:
    if not line.startswith(IDENTITY_HRP + "1"):
        raise UsageError(
            "not an age X25519 identity (a line must start with AGE-SECRET-KEY-1)",
            _IDENTITY_HINT,
        )
    try:
        hrp, key = decode(line)
    except Bech32Error as exc:
        raise UsageError(f"not an age identity: {exc}", _IDENTITY_HINT) from None
    if hrp != IDENTITY_HRP or len(key) != KEY_BYTES:
        raise UsageError("not an age X25519 identity (wrong prefix or length)", _IDENTITY_HINT)
    return key


def parse_identity(text: str) -> bytes:
    """The 32-byte X25519 private scalar of an ``AGE-SECRET-KEY-1…`` identity.

    ``text`` is one identity or the text of an identity file: blank lines and lines
    starting with ``#`` are skipped; every other line must be an X25519 identity
    (as ``age -i`` demands); the first one is returned.

    Raises:
        UsageError: no identity in the text, or a line that is not one.
    """
    keys = [
        _parse_identity_line(line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise UsageError("no age identity found in the text given", _IDENTITY_HINT)
    return keys[0]


def _check_length(key: bytes, what: str) -> None:
    if len(key) != KEY_BYTES:
        raise UsageError(f"an age {what} is 32 bytes, not {len(key)}")


def recipient_of(identity: bytes) -> str:
    """The ``age1…`` recipient (public key) of a 32-byte identity."""
    _check_length(identity, "identity")
    public = X25519PrivateKey.from_private_bytes(identity).public_key().public_bytes_raw()
    return encode(RECIPIENT_HRP, public)


def recipient_text(recipient: bytes) -> str:
    """The ``age1…`` text of a raw 32-byte X25519 public key."""
    _check_length(recipient, "recipient")
    return encode(RECIPIENT_HRP, recipient)


def identity_text(identity: bytes) -> str:
    """The ``AGE-SECRET-KEY-1…`` text of a 32-byte identity (secret: handle with care)."""
    _check_length(identity, "identity")
    return encode(IDENTITY_HRP, identity)


def generate_identity() -> bytes:
    """A fresh random 32-byte X25519 identity."""
    return X25519PrivateKey.generate().private_bytes_raw()
