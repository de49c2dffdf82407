"""The hub's signing keys: the ceremony's online keys and the tenants' keys.

Keys are loaded lazily, at most once per :class:`HubSigners` (decrypting a
passphrase-protected key is slow-ish), and the passphrase is asked for at
most once: the secrets handler is wrapped in a cache. Commands that only read
never ask for it.

The online key names (``signing.IMAGE_SNAPSHOT``, …) are the ceremony's, defined
once in :mod:`airlock.bundles.ceremony_output` and re-exported here.

A tenant's key is either held by the hub (an ``airlock-file:`` key under
``tenant-keys/``, encrypted with the hub passphrase) or held by the tenant
(any signer URI: an HSM, or a key file the tenant's operator unlocks). The
secret of a tenant-held key is asked for under its own name,
:func:`tenant_secret_name`, when the tenant's role must be signed — never
answered with the hub passphrase.
"""

from __future__ import annotations

import json
from pathlib import Path

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import CryptoSigner, Key, SecretsHandler, Signer

from airlock.bundles import tuf as tufrepo
from airlock.bundles.ceremony_output import DIRECTOR_SNAPSHOT as DIRECTOR_SNAPSHOT
from airlock.bundles.ceremony_output import DIRECTOR_TARGETS as DIRECTOR_TARGETS
from airlock.bundles.ceremony_output import DIRECTOR_TIMESTAMP as DIRECTOR_TIMESTAMP
from airlock.bundles.ceremony_output import ENVELOPE as ENVELOPE
from airlock.bundles.ceremony_output import IMAGE_MODELS as IMAGE_MODELS
from airlock.bundles.ceremony_output import IMAGE_SNAPSHOT as IMAGE_SNAPSHOT
from airlock.bundles.ceremony_output import IMAGE_TIMESTAMP as IMAGE_TIMESTAMP
from airlock.bundles.ceremony_output import ONLINE_KEY_NAMES as ONLINE_KEY_NAMES
from airlock.bundles.ceremony_output import missing_online_keys, online_key_refs
from airlock.bundles.errors import MediaError, SecretError, UsageError
from airlock.bundles.keys import (
    ONLINE_KDF_ITERATIONS,
    KeyRef,
    KeyStore,
    encrypted_pem,
    generate_signer,
)
from airlock.hub.store._home import tenant_secret_env

PROBE = b"airlock key probe"
TENANT_SECRET_PREFIX = "tenant:"  # noqa: S105 - a prefix of secret names


def tenant_secret_name(tenant: str, secret: str) -> str:
    """The name the secrets handler is asked for a tenant-held key's ``secret``.

    ``tenant:<tenant>:<secret>``, where ``secret`` is what the key's signer
    asks for (``passphrase`` for a key file, ``pin`` for an HSM).
    """
    return f"{TENANT_SECRET_PREFIX}{tenant}:{secret}"


def parse_tenant_secret(name: str) -> tuple[str, str] | None:
    """(tenant, secret) of a :func:`tenant_secret_name`, or None for the hub's own secrets."""
    if not name.startswith(TENANT_SECRET_PREFIX):
        return None
    tenant, _, secret = name.removeprefix(TENANT_SECRET_PREFIX).rpartition(":")
    return tenant, secret


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
        refs = online_key_refs(json.loads(ceremony_record.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UsageError) as exc:
        raise MediaError(
            f"{ceremony_record} is not a readable ceremony record ({exc})",
            hint="point at the directory written by `airlock ceremony init --out`",
        ) from None
    missing = missing_online_keys(refs)
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

    def tenant(self, tenant: str, uri: str, public_key: Key, held_by_tenant: bool) -> Signer:
        """The signer of tenant ``tenant``'s delegated role, loaded once.

        A hub-held key opens with the hub passphrase; a tenant-held key with
        the secret asked for as :func:`tenant_secret_name`.

        Raises:
            SecretError: the secret is missing or wrong, or the key cannot be opened.
            UsageError: the key is not the tenant's public key.
        """
        role = tufrepo.tenant_role(tenant)
        if role not in self._cache:
            ref = KeyRef(name=role, uri=uri, public_key=public_key)
            if not held_by_tenant:
                signer = self.store.signer(ref)
            else:
                store = KeyStore(
                    self.store.base_dir,
                    lambda secret: self.secrets(tenant_secret_name(tenant, secret)),
                )
                try:
                    signer = store.signer(ref)
                except SecretError as exc:
                    raise SecretError(
                        f"cannot open the key of tenant {tenant!r}: {exc.message}",
                        hint="the tenant's own passphrase or PIN is needed to sign its models: "
                        f"set {tenant_secret_env(tenant)} or ask the tenant's operator to enter it",
                    ) from None
            check_signer_matches(signer, public_key, role)
            self._cache[role] = signer
        return self._cache[role]

    def new_tenant_key(self, tenant: str, relative_path: str) -> tuple[KeyRef, bytes]:
        """Generates a hub-held tenant key; returns its ref and encrypted PEM (not yet written).

        The signer is cached so the same command can sign with it before the
        file is written.

        Raises:
            SecretError: no passphrase, or one too short to protect a key.
        """
        role = tufrepo.tenant_role(tenant)
        signer: CryptoSigner = generate_signer("ed25519")
        passphrase = self.secrets("passphrase")
        if not passphrase:
            raise SecretError("no hub passphrase given")
        pem = encrypted_pem(signer, passphrase, ONLINE_KDF_ITERATIONS)
        self._cache[role] = signer
        ref = KeyRef(name=role, uri=f"airlock-file:{relative_path}", public_key=signer.public_key)
        return ref, pem
