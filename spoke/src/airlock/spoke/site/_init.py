"""``airlock spoke init``: a new spoke home, its site keys, and its trust anchors.

The site admin brings the Image and Director roots from the ceremony (on
removable media) and compares their SHA-256 with the ceremony record; the
spoke checks each root is signed by a threshold of its own keys and that the
Director root anchors the hub's envelope key, then trusts them from here on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from tuf.api.metadata import Metadata, Root

from airlock.bundles.atomic import atomic_write_bytes, atomic_write_json
from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.config import CONFIG_FILE, database_settings, write_config
from airlock.bundles.db import session_scope
from airlock.bundles.errors import ConflictError, MediaError, SecretError, TrustError
from airlock.bundles.keys import MIN_PASSPHRASE_LENGTH, ONLINE_KDF_ITERATIONS, KeyStore, seal
from airlock.bundles.models import SiteIdentity, check_site_id
from airlock.bundles.schema import create_home_database
from airlock.bundles.tuf import DIRECTOR, IMAGE, check_root_signed, envelope_keys, initial_trusted
from airlock.spoke.site._home import (
    AGE_IDENTITY_FILE,
    IDENTITY_FILE,
    ROLE,
    SIGNING_KEY_FILE,
    SIGNING_KEYREF_FILE,
    SpokeHome,
)
from airlock.spoke.site._tables import SpokeState, TrustedMetadataFile


@dataclass(frozen=True)
class InitResult:
    """What ``spoke init`` created: the public identity and the root fingerprints."""

    home: Path
    identity: SiteIdentity
    root_sha256: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "home": str(self.home),
            "identity": self.identity.to_dict(),
            "root_sha256": self.root_sha256,
        }


def read_root(path: Path, repository: str) -> bytes:
    """Reads a root file and checks it is threshold-signed by its own root keys.

    Raises:
        MediaError: unreadable or not TUF root metadata.
        SignatureError: below its threshold.
    """
    hint = f"pass the ceremony's {repository}/1.root.json (copy it again from the ceremony medium)"
    try:
        data = Path(path).read_bytes()
        md = Metadata[Root].from_bytes(data)
    except FileNotFoundError:
        raise MediaError(f"{repository} root file {path} does not exist", hint=hint) from None
    except Exception as exc:
        raise MediaError(f"{path} is not TUF root metadata ({exc})", hint=hint) from None
    if not isinstance(md.signed, Root):
        raise MediaError(f"{path} is not root metadata", hint=hint)
    check_root_signed(md)
    return data


def init_spoke(
    home: Path,
    site_id: str,
    image_root: Path,
    director_root: Path,
    passphrase: str,
    require_encryption: bool = True,
    clock: Clock | None = None,
) -> InitResult:
    """Creates a spoke home; builds in a temporary directory and renames it into place.

    Raises:
        ConflictError: ``home`` already holds a spoke (nothing is touched).
        SecretError: the passphrase is too short.
        MediaError, SignatureError, TrustError: a root is unusable.
    """
    clock = clock or SystemClock()
    check_site_id(site_id)
    home = Path(home)
    if (home / CONFIG_FILE).exists() or (home.exists() and any(home.iterdir())):
        raise ConflictError(
            f"{home} is not empty", hint="choose a new directory for the spoke home"
        )
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SecretError(
            "the site passphrase is too short",
            hint=f"use at least {MIN_PASSPHRASE_LENGTH} characters",
        )
    roots = {IMAGE: read_root(image_root, IMAGE), DIRECTOR: read_root(director_root, DIRECTOR)}
    envelope_keys(Metadata[Root].from_bytes(roots[DIRECTOR]).signed)  # must anchor one
    if roots[IMAGE] == roots[DIRECTOR]:
        raise TrustError(
            "the Image and Director roots are the same file",
            hint="pass image/1.root.json and director/1.root.json from the ceremony",
        )

    home.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=home.parent))
    try:
        identity = _create_keys(build, site_id, passphrase)
        write_config(
            build,
            ROLE,
            {
                "site_id": site_id,
                "database": database_settings(ROLE),
                "import": {"require_encryption": require_encryption},
            },
        )
        (build / "staged" / "blobs" / "sha256").mkdir(parents=True)
        (build / "tmp").mkdir()
        _seed_database(build, site_id, roots, clock, identity)
        if home.exists():
            home.rmdir()
        build.rename(home)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return InitResult(
        home=home,
        identity=identity,
        root_sha256={repo: hashlib.sha256(data).hexdigest() for repo, data in roots.items()},
    )


def _create_keys(build: Path, site_id: str, passphrase: str) -> SiteIdentity:
    age_identity = pyrage.x25519.Identity.generate()
    atomic_write_bytes(
        build / AGE_IDENTITY_FILE,
        seal(str(age_identity).encode("ascii"), passphrase),
        mode=0o600,
    )
    signing = KeyStore(build).create_file_key(
        "site-signing", SIGNING_KEY_FILE, "ed25519", passphrase, ONLINE_KDF_ITERATIONS
    )
    atomic_write_json(build / SIGNING_KEYREF_FILE, signing.to_dict())
    identity = SiteIdentity(
        site_id=site_id,
        age_recipient=str(age_identity.to_public()),
        signing_keyid=signing.keyid,
        signing_key=signing.public_key.to_dict(),
    )
    atomic_write_json(build / IDENTITY_FILE, identity.to_dict())
    return identity


def _seed_database(
    build: Path, site_id: str, roots: dict[str, bytes], clock: Clock, identity: SiteIdentity
) -> None:
    home = SpokeHome(build)
    engine = create_home_database(home.config, SpokeState)
    now = clock.now()
    with session_scope(engine) as session:
        versions = {
            repo: Metadata[Root].from_bytes(data).signed.version for repo, data in roots.items()
        }
        session.add(
            SpokeState(
                site_id=site_id,
                time_floor=now.isoformat(),
                image_root_version=versions[IMAGE],
                director_root_version=versions[DIRECTOR],
                updated_at=now.isoformat(),
            )
        )
        for repo, data in roots.items():
            for name, content in initial_trusted(data).items():
                session.add(TrustedMetadataFile(repository=repo, name=name, data=content))
        AuditLog(engine, component=ROLE, site=site_id).record(
            "spoke.init",
            "success",
            object=site_id,
            details={
                "image_root_sha256": hashlib.sha256(roots[IMAGE]).hexdigest(),
                "director_root_sha256": hashlib.sha256(roots[DIRECTOR]).hexdigest(),
                "age_recipient": identity.age_recipient,
                "signing_keyid": identity.signing_keyid,
            },
            session=session,
            when=now.astimezone(dt.UTC),
        )
    engine.dispose()
