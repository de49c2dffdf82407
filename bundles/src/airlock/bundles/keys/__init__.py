"""Keys: securesystemslib signers addressed by URI (files, PKCS#11 HSMs), and
passphrase-sealed secrets.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.keys._pem import public_key_pem, read_public_key_pem
from airlock.bundles.keys._sealed import (
    FORMAT,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    PendingUnseal,
    seal,
    unseal,
)
from airlock.bundles.keys._signers import (
    ALGORITHMS,
    FILE_SCHEME,
    MIN_PASSPHRASE_LENGTH,
    OFFLINE_KDF_ITERATIONS,
    ONLINE_KDF_ITERATIONS,
    KeyRef,
    KeyStore,
    encrypted_pem,
    env_or_prompt_secrets,
    generate_signer,
    load_encrypted_key,
    write_encrypted_key,
)

__all__ = [
    "ALGORITHMS",
    "FILE_SCHEME",
    "FORMAT",
    "MIN_PASSPHRASE_LENGTH",
    "OFFLINE_KDF_ITERATIONS",
    "ONLINE_KDF_ITERATIONS",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "KeyRef",
    "KeyStore",
    "PendingUnseal",
    "encrypted_pem",
    "env_or_prompt_secrets",
    "generate_signer",
    "load_encrypted_key",
    "public_key_pem",
    "read_public_key_pem",
    "seal",
    "unseal",
    "write_encrypted_key",
]
