"""Sealed secrets: the site's age identity at rest (scrypt + ChaCha20-Poly1305)."""

from __future__ import annotations

import json

import pytest

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import MediaError, SecretError
from airlock.bundles.keys import (
    FORMAT,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    PendingUnseal,
    seal,
    unseal,
)

SECRET = b"AGE-SECRET-KEY-1EXAMPLEEXAMPLEEXAMPLE"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def sealed() -> bytes:
    return seal(SECRET, PASSPHRASE)


def test_round_trip_with_fixed_cost(sealed: bytes) -> None:
    header = json.loads(sealed)["header"]
    assert (header["format"], header["n"], header["r"], header["p"]) == (
        FORMAT,
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
    )
    assert 128 * SCRYPT_R * SCRYPT_N <= 64 * 2**20  # the unlock's scrypt memory
    assert SECRET not in sealed
    assert unseal(sealed, PASSPHRASE, "the test secret") == SECRET


def test_two_seals_differ(sealed: bytes) -> None:
    assert seal(SECRET, PASSPHRASE) != sealed  # fresh salt and nonce


def test_wrong_passphrase_is_a_secret_error_without_the_secret(sealed: bytes) -> None:
    with pytest.raises(SecretError, match="cannot open the test secret: wrong passphrase") as exc:
        unseal(sealed, "not the passphrase", "the test secret", hint="set THE_VARIABLE")
    assert exc.value.hint == "set THE_VARIABLE"
    assert "not the passphrase" not in str(exc.value.to_dict())


def _with(sealed: bytes, **changes: object) -> bytes:
    doc = json.loads(sealed)
    doc["header"].update(changes)
    return canonical_bytes(doc)


def test_altered_header_is_detected(sealed: bytes) -> None:
    doc = json.loads(sealed)
    other_salt = seal(SECRET, PASSPHRASE)
    doc["header"]["salt"] = json.loads(other_salt)["header"]["salt"]
    with pytest.raises(SecretError):
        unseal(canonical_bytes(doc), PASSPHRASE, "the test secret")


def test_altered_ciphertext_is_detected(sealed: bytes) -> None:
    doc = json.loads(sealed)
    raw = bytearray(doc["ciphertext"].encode())
    raw[0] = ord("A") if raw[0] != ord("A") else ord("B")
    doc["ciphertext"] = raw.decode()
    with pytest.raises(SecretError):
        unseal(canonical_bytes(doc), PASSPHRASE, "the test secret")


@pytest.mark.parametrize(
    "changes",
    [{"n": 2**21}, {"n": 1000}, {"r": 0}, {"p": 64}, {"format": "other/v9"}, {"cipher": "rot13"}],
)
def test_unsupported_or_unbounded_parameters_are_refused(
    sealed: bytes, changes: dict[str, object]
) -> None:
    with pytest.raises(MediaError, match="the test secret is not readable"):
        unseal(_with(sealed, **changes), PASSPHRASE, "the test secret")


@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b'{"header": {}}'])
def test_garbage_is_a_media_error(data: bytes) -> None:
    with pytest.raises(MediaError):
        unseal(data, PASSPHRASE, "the test secret")


def test_an_unseal_started_ahead_gives_the_secret_when_asked(sealed: bytes) -> None:
    pending = PendingUnseal(sealed, PASSPHRASE, "the test secret", hint="set THE_VARIABLE")
    assert pending.result() == SECRET


def test_an_unseal_started_ahead_raises_its_error_only_when_asked(sealed: bytes) -> None:
    pending = PendingUnseal(
        sealed, "not the passphrase", "the test secret", hint="set THE_VARIABLE"
    )
    with pytest.raises(SecretError, match="cannot open the test secret: wrong passphrase") as exc:
        pending.result()
    assert exc.value.hint == "set THE_VARIABLE"
    damaged = PendingUnseal(b"{not json", PASSPHRASE, "the test secret", hint="")
    with pytest.raises(MediaError, match="the test secret is not readable"):
        damaged.result()
