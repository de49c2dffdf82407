"""The hub's signing keys: the ceremony's online keys and the per-family keys.

Keys are loaded lazily, at most once per :class:`HubSigners` (decrypting a
passphrase-protected key is slow-ish), and the passphrase is asked for at
most once: the secrets handler is wrapped in a cache. Commands that only read
never ask for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import CryptoSigner, Key, SecretsHandler, Signer

from airlock.bundles.errors import MediaError, SecretError, UsageError
from airlock.bundles.keys import KeyRef, KeyStore, encrypted_pem, generate_signer

IMAGE_SNAPSHOT = "image-snapshot"
IMAGE_TIMESTAMP = "image-timestamp"
IMAGE_MODELS = "image-models"
DIRECTOR_TARGETS = "director-targets"
DIRECTOR_SNAPSHOT = "director-snapshot"
DIRECTOR_TIMESTAMP = "director-timestamp"
ENVELOPE = "envelope"
ONLINE_KEY_NAMES = (
    IMAGE_SNAPSHOT,
    IMAGE_TIMESTAMP,
    IMAGE_MODELS,
    DIRECTOR_TARGETS,
    DIRECTOR_SNAPSHOT,
    DIRECTOR_TIMESTAMP,
    ENVELOPE,
)
PROBE = b"airlock key probe"


def caching_secrets(handler: SecretsHandler) -> SecretsHandler:
    """Wraps a secrets handler so that each secret is asked for once."""
    cache: dict[str, str] = {}

    def cached(name: str) -> str:
        if name not in cache:
            cache[name] = handler(name)
        return cache[name]

    return cached


def read_online_refs(ceremony_record: Path) -> dict[str, KeyRef]:
    """The online key references of a ``ceremony.json``.

    Raises:
        MediaError: the file is unreadable or lacks an online key the hub needs.
    """
    try:
        record = json.loads(ceremony_record.read_bytes())
        refs = {name: KeyRef.from_dict(d) for name, d in record["online_keys"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UsageError) as exc:
        raise MediaError(
            f"{ceremony_record} is not a readable ceremony record ({exc})",
            hint="point at the directory written by `airlock ceremony init --out`",
        ) from None
    missing = [name for name in ONLINE_KEY_NAMES if name not in refs]
    if missing:
        raise MediaError(
            f"{ceremony_record} lacks the online keys {', '.join(missing)}",
            hint="the ceremony output is incomplete; re-run the ceremony",
        )
    return refs


def check_signer_matches(signer: Signer, public_key: Key, name: str) -> None:
    """Signs a probe and verifies it with ``public_key``.

    Raises:
        UsageError: the private key is not the one ``public_key`` names.
    """
    try:
        public_key.verify_signature(signer.sign(PROBE), PROBE)
    except UnverifiedSignatureError:
        raise UsageError(
            f"the private key of {name!r} does not match its public key",
            hint="the key file was swapped; restore the ceremony output from its backup",
        ) from None


class HubSigners:
    """Loads and caches the hub's signers from a key store base directory."""

    def __init__(self, base_dir: Path, online_refs: dict[str, KeyRef], secrets: SecretsHandler):
        self.secrets = caching_secrets(secrets)
        self.store = KeyStore(base_dir, self.secrets)
        self.online_refs = online_refs
        self._cache: dict[str, Signer] = {}

    def rebase(self, base_dir: Path) -> None:
        """Resolves relative key URIs against ``base_dir`` from now on (keeps loaded keys)."""
        self.store = KeyStore(base_dir, self.secrets)

    def online(self, name: str) -> Signer:
        """The signer of online key ``name`` (one of :data:`ONLINE_KEY_NAMES`).

        Raises:
            SecretError: wrong or missing passphrase.
            UsageError: the key file does not hold the expected key.
        """
        if name not in self._cache:
            ref = self.online_refs[name]
            signer = self.store.signer(ref)
            check_signer_matches(signer, ref.public_key, name)
            self._cache[name] = signer
        return self._cache[name]

    def family(self, role: str, uri: str, public_key: Key) -> Signer:
        """The signer of a model family's delegated role."""
        if role not in self._cache:
            ref = KeyRef(name=role, uri=uri, public_key=public_key)
            signer = self.store.signer(ref)
            check_signer_matches(signer, public_key, role)
            self._cache[role] = signer
        return self._cache[role]

    def new_family_key(self, role: str, relative_path: str) -> tuple[KeyRef, bytes]:
        """Generates a family key; returns its ref and encrypted PEM (not yet written).

        The signer is cached so the same command can sign with it before the
        file is written.

        Raises:
            SecretError: no passphrase, or one too short to protect a key.
        """
        signer: CryptoSigner = generate_signer("ed25519")
        passphrase = self.secrets("passphrase")
        if not passphrase:
            raise SecretError("no hub passphrase given")
        pem = encrypted_pem(signer, passphrase)
        self._cache[role] = signer
        ref = KeyRef(name=role, uri=f"airlock-file:{relative_path}", public_key=signer.public_key)
        return ref, pem
