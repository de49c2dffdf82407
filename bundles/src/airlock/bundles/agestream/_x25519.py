"""The X25519 recipient stanza: wrapping the file key to a recipient, unwrapping it.

Spec (C2SP age, "The X25519 recipient type")::

    -> X25519 <base64 ephemeral share>
    <base64 ChaCha20-Poly1305(wrap key, nonce 12 x 0x00, file key)>

    wrap key = HKDF-SHA-256(ikm = X25519(secret, other's public), salt = ephemeral
               share || recipient, info = "age-encryption.org/v1/X25519")

The reader tries every X25519 stanza with every identity; stanzas of other types are
skipped, except that an ``scrypt`` stanza mixed with others makes the header invalid.
Every X25519 stanza is checked for form before any is tried (stricter than trying in
order: a malformed one aborts even after a good one); a share giving an all-zero
shared secret aborts too.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream._header import Stanza, b64decode, b64encode, header_error, hkdf
from airlock.bundles.errors import UsageError

X25519_TYPE = "X25519"
X25519_INFO = b"age-encryption.org/v1/X25519"
FILE_KEY_BYTES = 16
_ZERO_NONCE = bytes(12)
_ZERO_SECRET = bytes(32)


def wrap(file_key: bytes, recipient: bytes) -> Stanza:
    """An X25519 stanza wrapping ``file_key`` to ``recipient`` (32-byte public key).

    Raises:
        UsageError: the recipient is a low-order point (no shared secret).
    """
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError:
        shared = _ZERO_SECRET
    if shared == _ZERO_SECRET:
        raise UsageError(
            "the age recipient is not a usable X25519 public key (a low-order point)",
            "check the recipient: it must be a site's key as printed by `age-keygen -y`",
        )
    wrap_key = hkdf(shared, share + recipient, X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return Stanza((X25519_TYPE, b64encode(share).decode("ascii")), body)


def _share_of(stanza: Stanza) -> bytes:
    if len(stanza.args) != 2:
        raise header_error("an X25519 stanza without exactly one argument")
    try:
        share = b64decode(stanza.args[1].encode("ascii"))
    except ValueError as exc:
        raise header_error(f"an X25519 share is {exc}") from None
    if len(share) != 32:
        raise header_error("an X25519 share that is not 32 bytes")
    if len(stanza.body) != FILE_KEY_BYTES + 16:
        raise header_error("an X25519 stanza body that is not 32 bytes")
    return share


def unwrap(stanzas: Sequence[Stanza], identities: Sequence[bytes]) -> bytes | None:
    """The file key, from the first X25519 stanza one of ``identities`` opens; else None.

    Raises:
        DecryptionError: a malformed X25519 stanza, an all-zero shared secret, or an
            ``scrypt`` stanza alongside others.
        UsageError: an identity that is not 32 bytes.
    """
    if len(stanzas) > 1 and any(s.args[0] == "scrypt" for s in stanzas):
        raise header_error("an scrypt stanza alongside other stanzas")
    keys = []
    for identity in identities:
        if len(identity) != 32:
            raise UsageError(f"an age identity is 32 bytes, not {len(identity)}")
        private = X25519PrivateKey.from_private_bytes(identity)
        keys.append((private, private.public_key().public_bytes_raw()))
    ours = [(_share_of(s), s.body) for s in stanzas if s.args[0] == X25519_TYPE]
    for share, body in ours:
        peer = X25519PublicKey.from_public_bytes(share)
        for private, public in keys:
            try:
                shared = private.exchange(peer)
            except ValueError:
                shared = _ZERO_SECRET
            if shared == _ZERO_SECRET:
                raise header_error("an X25519 share gives an all-zero shared secret")
            wrap_key = hkdf(shared, share + public, X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
            except InvalidTag:
                continue
    return None
