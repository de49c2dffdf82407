"""The encryption layer of a series or a reader: plain tars, or age."""

from __future__ import annotations

from collections.abc import Sequence

from airlock.bundles.volumes._age import AgeDecryption, AgeEncryption
from airlock.bundles.volumes._cipher import (
    Decryption,
    Encryption,
    PlainDecryption,
    PlainEncryption,
)


def encryption_for(recipients: Sequence[str] | None) -> Encryption:
    """The series' encryption: plain for None, age to ``recipients`` otherwise.

    Raises:
        UsageError: an empty recipient list, or a recipient that is not ``age1…``.
    """
    if recipients is None:
        return PlainEncryption()
    return AgeEncryption(recipients)


def decryption_for(identities: Sequence[bytes] | None) -> Decryption:
    """How to open volumes: plain for None, age with ``identities`` (raw X25519) otherwise."""
    if identities is None:
        return PlainDecryption()
    return AgeDecryption(identities)
