"""The hub home directory: where everything of one hub lives, and the lock around it.

Layout (``--home``, env ``AIRLOCK_HUB_HOME``, default ``./hub-home``)::

    airlock.toml                       role = "hub", [database], [hub]
    hub.db                             sites, models, assignments, audit log
    ceremony.json                      the ceremony record (public keys and key URIs)
    online-keys/<name>.pem             online keys from the ceremony (encrypted)
    tenant-keys/<name>.pem             hub-held tenant keys the hub made (encrypted)
    repository/image/N.root.json       Image root history
    repository/image/{targets,models,tenant-<name>,snapshot,timestamp}.json
    repository/director/root/N.root.json
    repository/director/sites/<site>/{targets,snapshot,timestamp}.json
    blobs/sha256/<hex>                 content-addressed model files
    tmp/                               staging (same file system as blobs/)

Every state-changing operation holds an exclusive lock on ``.lock`` so that
two commands never interleave their metadata version bumps.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.ceremony_output import CEREMONY_FILE, ONLINE_DIR
from airlock.bundles.config import HomeConfig, load_config

ROLE = "hub"
HOME_ENV = "AIRLOCK_HUB_HOME"
PASSPHRASE_ENV = "AIRLOCK_HUB_PASSPHRASE"  # noqa: S105 - a variable name
TENANT_SECRET_ENV_PREFIX = "AIRLOCK_TENANT_SECRET_"  # noqa: S105 - a variable name prefix
DEFAULT_HOME = Path("hub-home")
DEFAULT_TRANSIT_DAYS = 30
DEFAULT_SETTINGS = {
    "database": {"url": "sqlite:///hub.db"},
    "hub": {"default_transit_days": DEFAULT_TRANSIT_DAYS},
}

CEREMONY_RECORD = CEREMONY_FILE
ONLINE_KEYS_DIR = ONLINE_DIR
TENANT_KEYS_DIR = "tenant-keys"
LOCK_FILE = ".lock"


def tenant_secret_env(tenant: str) -> str:
    """The environment variable that may hold a tenant-held key's passphrase or PIN.

    ``AIRLOCK_TENANT_SECRET_<NAME>``: the tenant name upper-cased, every
    character other than a letter or digit replaced by ``_``.
    """
    suffix = "".join(c if c.isalnum() else "_" for c in tenant.upper())
    return f"{TENANT_SECRET_ENV_PREFIX}{suffix}"


@dataclass(frozen=True)
class HubHome:
    """Paths inside one hub home directory (nothing is read or created here)."""

    root: Path

    @property
    def ceremony_record(self) -> Path:
        """The copy of the ceremony's ``ceremony.json``."""
        return self.root / CEREMONY_RECORD

    @property
    def image_dir(self) -> Path:
        """The Image repository's metadata directory."""
        return self.root / "repository" / "image"

    @property
    def director_root_dir(self) -> Path:
        """The Director repository's root history."""
        return self.root / "repository" / "director" / "root"

    def site_dir(self, site_id: str) -> Path:
        """The Director metadata directory of one site."""
        return self.root / "repository" / "director" / "sites" / site_id

    @property
    def blob_dir(self) -> Path:
        """The content-addressed blob store."""
        return self.root / "blobs" / "sha256"

    @property
    def tmp_dir(self) -> Path:
        """Staging area on the same file system as the blob store."""
        return self.root / "tmp"

    def tenant_key_path(self, name: str) -> str:
        """The home-relative path of a hub-held tenant key file."""
        return f"{TENANT_KEYS_DIR}/{name}.pem"

    def config(self) -> HomeConfig:
        """Reads ``airlock.toml``.

        Raises:
            NotFoundError: the directory is not an initialised hub home.
            UsageError: it is another role's home.
        """
        return load_config(self.root, ROLE)

    def transit_days_default(self) -> int:
        """The configured default transit budget in days (``hub.default_transit_days``)."""
        return int(self.config().get("hub.default_transit_days", DEFAULT_TRANSIT_DAYS))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the home's exclusive lock (blocks until another command finishes)."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
