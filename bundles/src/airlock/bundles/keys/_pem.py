"""Public keys as SubjectPublicKeyInfo PEM, the form ``openssl`` and the stock in-toto
tools read and write (functionary keys, the audit checkpoint key given to auditors).

Needs only ``cryptography`` (through securesystemslib), not in-toto, so that every
component can read and write these files.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.signer import Key, SSlibKey

from airlock.bundles.errors import MissingFileError, UsageError


def read_public_key_pem(path: Path) -> Key:
    """Reads a SubjectPublicKeyInfo PEM public key (what ``in-toto-run`` users have).

    Raises:
        NotFoundError: no such file.
        UsageError: not a supported PEM public key.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"public key file {path} does not exist") from None
    try:
        return SSlibKey.from_crypto(load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"{path} holds no supported public key ({exc})",
            hint="pass the functionary's public key as PEM: Ed25519, ECDSA P-256 or RSA "
            "(`openssl pkey -in KEY -pubout`)",
        ) from None


def public_key_pem(key: Key) -> bytes:
    """``key`` as SubjectPublicKeyInfo PEM, as ``in-toto-verify --verification-keys`` reads it.

    Raises:
        UsageError: the key is not one PEM can express, or the PEM would give the
            stock tool another key id than Airlock's.
    """
    if not isinstance(key, SSlibKey):
        raise UsageError(f"key {key.keyid} cannot be exported as PEM")
    pem = key._crypto_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if SSlibKey.from_crypto(load_pem_public_key(pem)).keyid != key.keyid:
        raise UsageError(
            f"key {key.keyid} gets another key id from its PEM form",
            hint="in-toto-verify could not match it to the layout's signatures",
        )
    return bytes(pem)
