"""Tenant-held keys for tests: a key file outside the hub home, and the secrets that open it.

A tenant-held key is an ``airlock-file:`` key with its own passphrase, kept
where the tenant's operator keeps it (here: a directory of the test's own).
The hub asks for its secret under :func:`airlock.hub.repos._signing.tenant_secret_name`;
:class:`TenantSecrets` answers those from the tenants' passphrases (and
everything else with the hub passphrase), recording every question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from securesystemslib.signer import Key

from airlock.bundles.errors import SecretError
from airlock.bundles.keys import ONLINE_KDF_ITERATIONS, generate_signer, write_encrypted_key
from airlock.hub.repos import parse_tenant_secret
from helpers.hubenv import HUB_PASSPHRASE

TENANT_PASSPHRASE = "the tenant's own passphrase"


@dataclass(frozen=True)
class TenantKey:
    """A tenant-held key: its signer URI (absolute path), public key and key file."""

    uri: str
    public_key: Key
    path: Path


def make_tenant_key(directory: Path, passphrase: str = TENANT_PASSPHRASE) -> TenantKey:
    """Creates an encrypted Ed25519 key file ``key.pem`` in the new directory ``directory``."""
    directory.mkdir(parents=True)
    signer = generate_signer("ed25519")
    path = (directory / "key.pem").absolute()
    uri = write_encrypted_key(path, signer, passphrase, ONLINE_KDF_ITERATIONS)
    return TenantKey(uri=uri, public_key=signer.public_key, path=path)


class TenantSecrets:
    """A hub secrets handler: the hub passphrase, and each tenant's own secret by tenant name."""

    def __init__(self, **tenants: str) -> None:
        self.tenants = tenants
        self.asked: list[str] = []

    def __call__(self, name: str) -> str:
        self.asked.append(name)
        parsed = parse_tenant_secret(name)
        if parsed is None:
            return HUB_PASSPHRASE
        tenant, _secret = parsed
        if tenant not in self.tenants:
            raise SecretError(f"no secret for tenant {tenant!r}")
        return self.tenants[tenant]
