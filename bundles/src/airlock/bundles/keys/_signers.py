"""Keys as securesystemslib signers addressed by URI.

A private key is named by a URI and loaded through :class:`KeyStore`, so that
callers never care where it lives:

* ``airlock-file:<path>`` — an encrypted PKCS#8 PEM file (Ed25519 or ECDSA
  P-256): PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, readable by OpenSSL
  and any PKCS#8 tool. The passphrase comes from a secrets handler that the CLI
  supplies (prompt or environment variable), never from an argument. Relative
  paths resolve against the key store's base directory.
* any scheme securesystemslib knows (``hsm:…``, ``file2:…``) is passed to
  ``Signer.from_priv_key_uri`` unchanged, so an HSM-backed key fits in
  without changing callers.

Private key material never appears in errors, logs or audit entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

import click
from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import (
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Key,
    SecretsHandler,
    Signer,
    SSlibKey,
)

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.errors import NotFoundError, SecretError, UsageError

ALGORITHMS = ("ed25519", "ecdsa-p256")
"""Key algorithms Airlock creates (Ed25519 is the default)."""

FILE_SCHEME = "airlock-file"
MIN_PASSPHRASE_LENGTH = 8
OFFLINE_KDF_ITERATIONS = 600_000
"""PBKDF2-HMAC-SHA256 rounds for officers' offline keys (OWASP's figure for human passphrases)."""
ONLINE_KDF_ITERATIONS = 100_000
"""Rounds for keys a hub or spoke opens on every command, under a machine-held passphrase."""


def generate_signer(algorithm: str = "ed25519") -> CryptoSigner:
    """Creates a new private key in memory.

    Args:
        algorithm: ``ed25519`` (default) or ``ecdsa-p256``.

    Raises:
        UsageError: the algorithm is not supported.
    """
    if algorithm == "ed25519":
        return CryptoSigner.generate_ed25519()
    if algorithm == "ecdsa-p256":
        return CryptoSigner.generate_ecdsa()
    raise UsageError(
        f"unsupported key algorithm {algorithm!r}",
        hint=f"use one of: {', '.join(ALGORITHMS)}",
    )


def encrypted_pem(
    signer: CryptoSigner, passphrase: str, iterations: int = OFFLINE_KDF_ITERATIONS
) -> bytes:
    """Returns the signer's private key as passphrase-encrypted PKCS#8 PEM.

    The encryption is PBES2 (RFC 8018): PBKDF2-HMAC-SHA256 with a random
    16-byte salt and ``iterations`` rounds, then AES-256-CBC. The
    ``cryptography`` package would only use OpenSSL's default of 2,048
    rounds, far too few for an offline key file that can be stolen; the
    structure is written with asn1crypto and read back by OpenSSL as usual.

    Raises:
        SecretError: the passphrase is too short.
    """
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SecretError(
            "the passphrase is too short",
            hint=f"use at least {MIN_PASSPHRASE_LENGTH} characters",
        )
    plain = signer._private_key.private_bytes(
        encoding=Encoding.DER, format=PrivateFormat.PKCS8, encryption_algorithm=NoEncryption()
    )
    salt, iv = os.urandom(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase.encode("utf-8"))
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    kdf = {
        "algorithm": "pbkdf2",
        "parameters": {
            "salt": asn1_algos.Pbkdf2Salt(name="specified", value=asn1_core.OctetString(salt)),
            "iteration_count": iterations,
            "prf": {"algorithm": "sha256"},
        },
    }
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": kdf,
                    "encryption_scheme": {
                        "algorithm": "aes256_cbc",
                        "parameters": asn1_core.OctetString(iv),
                    },
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    return bytes(asn1_pem.armor("ENCRYPTED PRIVATE KEY", info.dump()))


def write_encrypted_key(
    path: Path, signer: CryptoSigner, passphrase: str, iterations: int = OFFLINE_KDF_ITERATIONS
) -> str:
    """Stores the private key encrypted at ``path`` (mode 0600) and returns its URI.

    The URI is ``airlock-file:<path>`` with ``path`` as given (keep it relative
    to make a home directory relocatable).
    """
    atomic_write_bytes(Path(path), encrypted_pem(signer, passphrase, iterations), mode=0o600)
    return f"{FILE_SCHEME}:{path}"


class EncryptedFileSigner(CryptoSigner):
    """A CryptoSigner loaded from an encrypted PKCS#8 file (URI ``airlock-file:<path>``).

    The secrets handler is asked for ``"passphrase"``.
    """

    SCHEME = FILE_SCHEME

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> CryptoSigner:
        """Loads the key named by ``priv_key_uri`` (see :class:`KeyStore` for relative paths).

        Raises:
            NotFoundError: the key file does not exist.
            SecretError: no secrets handler, or the passphrase is wrong.
            UsageError: the file does not hold the private half of ``public_key``.
        """
        uri = parse.urlparse(priv_key_uri)
        if uri.scheme != cls.SCHEME:
            raise UsageError(f"not an {cls.SCHEME} URI: {priv_key_uri}")
        return load_encrypted_key(Path(uri.path), public_key, secrets_handler)


SIGNER_FOR_URI_SCHEME[FILE_SCHEME] = EncryptedFileSigner


def load_encrypted_key(
    path: Path, public_key: Key, secrets_handler: SecretsHandler | None
) -> CryptoSigner:
    """Decrypts the PKCS#8 key file at ``path`` and checks it matches ``public_key``.

    Raises:
        NotFoundError: no such file.
        SecretError: no secrets handler, or the passphrase is wrong.
        UsageError: the key does not match ``public_key``.
    """
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"private key file {path} does not exist",
            hint="check the key URI, or restore the key file from its backup",
        ) from None
    if secrets_handler is None:
        raise SecretError(
            f"a passphrase is needed to open {Path(path).name}",
            hint="run the command interactively or set the passphrase environment variable",
        )
    passphrase = secrets_handler("passphrase")
    try:
        private_key = load_pem_private_key(pem, passphrase.encode("utf-8"))
    except (ValueError, TypeError):
        raise SecretError(
            f"cannot open {Path(path).name}: wrong passphrase, or not an encrypted key",
            hint="check the passphrase (or its environment variable) and try again",
        ) from None
    if not isinstance(public_key, SSlibKey):
        raise UsageError(f"unsupported public key type for {Path(path).name}")
    try:
        return CryptoSigner(private_key, public_key)
    except Exception:
        raise UsageError(
            f"the private key in {Path(path).name} does not match its public key",
            hint="the key file was swapped or the key list is wrong; restore both from backup",
        ) from None


@dataclass(frozen=True)
class KeyRef:
    """A named key: where the private half lives (URI) and its public half."""

    name: str
    uri: str
    public_key: Key

    @property
    def keyid(self) -> str:
        """The TUF key id of the public key."""
        return str(self.public_key.keyid)

    def to_dict(self) -> dict[str, Any]:
        """Serialises to a JSON-ready dict (public data only)."""
        return {
            "name": self.name,
            "uri": self.uri,
            "keyid": self.keyid,
            "public_key": self.public_key.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRef:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: the data is malformed.
        """
        try:
            key = Key.from_dict(data["keyid"], dict(data["public_key"]))
            return cls(name=str(data["name"]), uri=str(data["uri"]), public_key=key)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed key record: {exc}") from None


class KeyStore:
    """Loads signers by URI, resolving relative ``airlock-file:`` paths against a base dir.

    This is the only way Airlock code obtains a private key, so file keys and
    HSM keys (``hsm:…``) are interchangeable for every caller.
    """

    def __init__(self, base_dir: Path, secrets_handler: SecretsHandler | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.secrets_handler = secrets_handler

    def resolve(self, uri: str) -> str:
        """Returns ``uri`` with a relative ``airlock-file:`` path made absolute."""
        parsed = parse.urlparse(uri)
        if parsed.scheme == FILE_SCHEME and not Path(parsed.path).is_absolute():
            return f"{FILE_SCHEME}:{self.base_dir / parsed.path}"
        return uri

    def signer(self, ref: KeyRef) -> Signer:
        """Returns a signer for the key ``ref`` names.

        Raises:
            SecretError: the passphrase or PIN is missing or wrong.
            NotFoundError: the key is not where its URI says.
        """
        uri = self.resolve(ref.uri)
        try:
            return Signer.from_priv_key_uri(uri, ref.public_key, self.secrets_handler)
        except (SecretError, NotFoundError, UsageError):
            raise
        except Exception as exc:  # e.g. PKCS#11 PinIncorrect, missing token
            raise SecretError(
                f"cannot open key {ref.name!r} ({type(exc).__name__})",
                hint="check the PIN or passphrase and that the token or key file is present",
            ) from None

    def create_file_key(
        self,
        name: str,
        relative_path: str,
        algorithm: str,
        passphrase: str,
        iterations: int = OFFLINE_KDF_ITERATIONS,
    ) -> KeyRef:
        """Generates a key, stores it encrypted under the base dir, and returns its ref.

        ``iterations`` is the PBKDF2 cost (see :func:`encrypted_pem`): the
        default suits officers' offline keys; keys that a service opens on
        every command use :data:`ONLINE_KDF_ITERATIONS`.
        """
        signer = generate_signer(algorithm)
        write_encrypted_key(self.base_dir / relative_path, signer, passphrase, iterations)
        return KeyRef(name=name, uri=f"{FILE_SCHEME}:{relative_path}", public_key=signer.public_key)


def env_or_prompt_secrets(
    env_var: str, prompt: Callable[[str], str] | None = None
) -> SecretsHandler:
    """Builds a secrets handler: the environment variable if set, else the prompt.

    Args:
        env_var: Name of the environment variable holding the passphrase/PIN.
        prompt: Called with the secret's name when the variable is unset
            (the CLI passes a no-echo prompt). ``None`` means non-interactive.

    Raises (when called):
        SecretError: neither source gives a secret (unset variable, and no prompt or
            a prompt that could not ask: no terminal, end of input), naming ``env_var``.
    """

    def handler(secret_name: str) -> str:
        value = os.environ.get(env_var)
        if value:
            return value
        if prompt is not None:
            try:
                return prompt(secret_name)
            except (EOFError, click.exceptions.Abort):  # no terminal to ask: say what to set
                pass
        raise SecretError(
            f"no {secret_name} given",
            hint=f"set {env_var} or run the command in a terminal to be prompted",
        )

    return handler
