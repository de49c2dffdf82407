"""A spoke's home directory: configuration, database, site keys, staged blobs.

Layout::

    HOME/airlock.toml                 role = "spoke", site_id, [database], [import]
    HOME/site-identity.json           public: what the hub needs to register the site
    HOME/keys/site-signing.pem        Ed25519 site key, encrypted PKCS#8
    HOME/keys/site-signing.json       its KeyRef (URI + public key)
    HOME/keys/site-age-identity.sealed  the site's age X25519 identity, sealed with the
                                      site passphrase (airlock.bundles.keys._sealed)
    HOME/staged/blobs/sha256/<hex>    staged model files, content-addressed
    HOME/tmp/                         scratch space for imports (same filesystem as staged/)
    HOME/spoke.db                     SQLite (default) — see airlock.spoke.site._tables

The passphrase protecting both keys comes from ``AIRLOCK_SPOKE_PASSPHRASE``
or a prompt, through a secrets handler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyrage
from securesystemslib.signer import SecretsHandler
from sqlalchemy import Engine

from airlock.bundles.audit import AuditLog
from airlock.bundles.config import HomeConfig, load_config
from airlock.bundles.errors import SecretError
from airlock.bundles.keys import KeyRef, KeyStore, PendingUnseal, unseal
from airlock.bundles.schema import open_home_database
from airlock.spoke.site._names import (
    AGE_IDENTITY_FILE,
    IDENTITY_FILE,
    IDENTITY_WHAT,
    PASSPHRASE_ENV,
    PASSPHRASE_HINT,
    ROLE,
    SIGNING_KEY_FILE,
    SIGNING_KEYREF_FILE,
)
from airlock.spoke.site._tables import SpokeState

__all__ = [  # the names live in ._names; importers of this module find them here too
    "AGE_IDENTITY_FILE",
    "IDENTITY_FILE",
    "PASSPHRASE_ENV",
    "ROLE",
    "SIGNING_KEYREF_FILE",
    "SIGNING_KEY_FILE",
    "SpokeHome",
]


@dataclass
class SpokeHome:
    """Paths and handles of one spoke home directory."""

    path: Path
    secrets: SecretsHandler | None = None
    config: HomeConfig = field(init=False)
    unlocking: PendingUnseal | None = field(default=None, repr=False)
    """The age identity being opened ahead of need (:mod:`._unlock`), if it is."""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.config = load_config(self.path, ROLE)

    @property
    def site_id(self) -> str:
        """This site's id."""
        return str(self.config.get("site_id"))

    @property
    def require_encryption(self) -> bool:
        """Whether unencrypted bundles are refused (default: yes)."""
        value = self.config.get("import.require_encryption", True)
        return value if isinstance(value, bool) else str(value).lower() not in {"0", "false", "no"}

    @property
    def blob_dir(self) -> Path:
        """Where staged blobs live."""
        return self.path / "staged" / "blobs" / "sha256"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for imports, on the same filesystem as the blob store."""
        return self.path / "tmp"

    @cached_property
    def engine(self) -> Engine:
        """The database engine (opened on first use; the schema must be this release's).

        Raises:
            UsageError: the configured database is missing or holds no spoke
                (nothing is created; see :func:`~airlock.bundles.schema.open_home_database`).
            SchemaVersionError: the schema is older or newer than this release (exit 8).
            StorageError: the home is read-only or its disk is full (exit 7).
        """
        return open_home_database(self.config, SpokeState)

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log, stamped with this site's id."""
        return AuditLog(self.engine, component=ROLE, site=self.site_id)

    def close(self) -> None:
        """Releases the database connections, if the engine was ever opened.

        The home stays usable: the next use of :attr:`engine` opens a new one.
        """
        self.__dict__.pop("audit", None)
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.dispose()

    def signing_key(self) -> KeyRef:
        """The site's Ed25519 signing key reference (public data)."""
        data: dict[str, Any] = json.loads((self.path / SIGNING_KEYREF_FILE).read_text())
        return KeyRef.from_dict(data)

    def keystore(self) -> KeyStore:
        """A key store resolving this home's key URIs."""
        return KeyStore(self.path, self.secrets)

    def age_identity(self) -> Any:
        """Decrypts and returns the site's age identity.

        Raises:
            SecretError: no passphrase, or the wrong one.
        """
        return pyrage.x25519.Identity.from_str(self._age_secret())

    def age_identity_key(self) -> bytes:
        """Decrypts the site's age identity as the raw X25519 scalar (format-2 volumes).

        Raises:
            SecretError: no passphrase, or the wrong one.
        """
        from airlock.bundles.agestream import parse_identity

        return parse_identity(self._age_secret())

    def _age_secret(self) -> str:
        """The identity's text (``AGE-SECRET-KEY-1…``): from ``unlocking``, or unsealed now."""
        unlocking, self.unlocking = self.unlocking, None
        if unlocking is not None:
            secret = unlocking.result()
        elif self.secrets is None:
            raise SecretError(
                "the site passphrase is needed to open the site's age identity",
                hint=f"set {PASSPHRASE_ENV} or run the command in a terminal",
            )
        else:
            sealed = (self.path / AGE_IDENTITY_FILE).read_bytes()
            secret = unseal(sealed, self.secrets("passphrase"), IDENTITY_WHAT, hint=PASSPHRASE_HINT)
        return secret.decode("ascii").strip()
