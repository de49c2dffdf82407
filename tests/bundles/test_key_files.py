"""Encrypted key files: PBES2 with a deliberate PBKDF2 cost, readable by OpenSSL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem

from airlock.bundles.errors import SecretError
from airlock.bundles.keys import (
    OFFLINE_KDF_ITERATIONS,
    ONLINE_KDF_ITERATIONS,
    KeyStore,
    encrypted_pem,
    generate_signer,
)

PASSPHRASE = "a passphrase for key files"


def kdf_parameters(pem: bytes) -> tuple[str, str, int, str, int]:
    """(scheme, kdf, iterations, cipher, salt length) of an encrypted PKCS#8 PEM."""
    _type, _headers, der = asn1_pem.unarmor(pem)
    info = asn1_keys.EncryptedPrivateKeyInfo.load(der)
    algorithm = info["encryption_algorithm"]
    kdf = algorithm["parameters"]["key_derivation_func"]
    params = kdf["parameters"]
    return (
        algorithm["algorithm"].native,
        params["prf"]["algorithm"].native,
        params["iteration_count"].native,
        algorithm["parameters"]["encryption_scheme"]["algorithm"].native,
        len(params["salt"].chosen.native),
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_offline_keys_use_pbes2_with_600k_rounds(tmp_path: Path, algorithm: str) -> None:
    ref = KeyStore(tmp_path).create_file_key("k", "k.pem", algorithm, PASSPHRASE)
    pem = (tmp_path / "k.pem").read_bytes()
    assert kdf_parameters(pem) == ("pbes2", "sha256", 600_000, "aes256_cbc", 16)
    assert OFFLINE_KDF_ITERATIONS == 600_000
    signer = KeyStore(tmp_path, lambda _n: PASSPHRASE).signer(ref)
    ref.public_key.verify_signature(signer.sign(b"payload"), b"payload")


def test_online_keys_use_their_own_cost_and_fresh_salts() -> None:
    signer = generate_signer()
    first = encrypted_pem(signer, PASSPHRASE, ONLINE_KDF_ITERATIONS)
    second = encrypted_pem(signer, PASSPHRASE, ONLINE_KDF_ITERATIONS)
    assert kdf_parameters(first)[2] == ONLINE_KDF_ITERATIONS
    assert first != second  # a new salt and IV every time


def test_openssl_reads_the_key_with_the_passphrase_only(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is installed by `make system-deps`"
    KeyStore(tmp_path).create_file_key("k", "k.pem", "ed25519", PASSPHRASE)
    good = subprocess.run(
        [openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-passin", "env:PASS", "-noout"],
        env={"PASS": PASSPHRASE},
        capture_output=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-passin", "env:PASS", "-noout"],
        env={"PASS": "not the passphrase"},
        capture_output=True,
        check=False,
    )
    assert bad.returncode != 0


def test_a_wrong_passphrase_is_a_secret_error(tmp_path: Path) -> None:
    ref = KeyStore(tmp_path).create_file_key("k", "k.pem", "ed25519", PASSPHRASE)
    with pytest.raises(SecretError, match="wrong passphrase"):
        KeyStore(tmp_path, lambda _n: "not the passphrase").signer(ref)


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(SecretError, match="too short"):
        encrypted_pem(generate_signer(), "short")
