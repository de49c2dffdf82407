"""``airlock hub init``: build a new hub home from a checked ceremony output.

Steps (any failure leaves no home behind):

1. refuse an existing, non-empty home (the refusal is audited in that home's
   log when it is a hub home);
2. read and verify the ceremony output (:mod:`airlock.hub.trust._ceremony_input`)
   and open every online key with the hub passphrase;
3. in a staging directory next to the home: write ``airlock.toml``, create
   the database, copy the online keys (never the offline ones) and the
   public metadata, create the Image ``models`` role v1 (empty) and Image
   snapshot and timestamp v1, and append the ``hub.init`` audit entry;
4. rename the staging directory into place.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from securesystemslib.signer import SecretsHandler

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, AuditRecord
from airlock.bundles.clock import Clock, SystemClock, utc_iso
from airlock.bundles.config import CONFIG_FILE, database_settings, load_config, write_config
from airlock.bundles.errors import AirlockError, ConflictError, UsageError
from airlock.bundles.schema import create_home_database, open_home_database
from airlock.hub.context._context import HubContext, hub_context
from airlock.hub.context._operation import record_failure
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.repos._director import DirectorRoots
from airlock.hub.repos._image import ImageRepo
from airlock.hub.repos._signing import HubSigners
from airlock.hub.repos._tufmeta import StagedWrites
from airlock.hub.store._home import (
    CEREMONY_RECORD,
    DEFAULT_SETTINGS,
    ROLE,
    TENANT_KEYS_DIR,
    HubHome,
)
from airlock.hub.store._tables import HubSite
from airlock.hub.trust._ceremony_input import (
    CeremonyOutput,
    load_online_signers,
    online_key_files,
    read_ceremony,
    verify_ceremony,
)

INIT_ACTION = "hub.init"


def check_new_home(home: Path, clock: Clock, ceremony_dir: Path) -> None:
    """Refuses a home that exists and is not an empty directory.

    Raises:
        ConflictError: it exists (audited in its log when it is a hub home).
    """
    if not (home.exists() or home.is_symlink()):
        return
    if home.is_dir() and not home.is_symlink() and not any(home.iterdir()):
        return
    error = ConflictError(
        f"{home} already exists; refusing to initialise a hub over it",
        hint="choose a new --home; an existing hub keeps its keys and history",
    )
    if (home / CONFIG_FILE).is_file():
        with contextlib.suppress(AirlockError):
            engine = open_home_database(load_config(home, ROLE), AuditRecord)
            try:
                record_failure(AuditLog(engine, ROLE), clock, INIT_ACTION, str(ceremony_dir), error)
            finally:
                engine.dispose()
    raise error


def _populate(
    staging: Path, output: CeremonyOutput, signers: HubSigners, clock: Clock
) -> dict[str, object]:
    """Fills the staging home; returns the audit details."""
    home = HubHome(staging)
    config = write_config(staging, ROLE, DEFAULT_SETTINGS | {"database": database_settings(ROLE)})
    writes = StagedWrites()
    for relative, source in online_key_files(output).items():
        writes.put(staging / relative, source.read_bytes(), mode=0o600)
    writes.put(home.ceremony_record, (output.directory / CEREMONY_RECORD).read_bytes())

    now = clock.now()
    online_expiry = tufrepo.expiry_from(now, tufrepo.ONLINE_ROLE_EXPIRY_DAYS)
    image = ImageRepo(
        directory=home.image_dir,
        roots=output.image_roots,
        root_bytes=output.image_root_bytes,
        targets=output.image_targets,
        models=image_repo.new_models_role(online_expiry, signers.online(signing.IMAGE_MODELS)),
    )
    image_repo.refresh(
        image,
        online_expiry,
        signers.online(signing.IMAGE_SNAPSHOT),
        signers.online(signing.IMAGE_TIMESTAMP),
    )
    image.stage_roots(writes)
    image.stage(
        writes, [image_repo.TARGETS, tufrepo.MODELS_ROLE, image_repo.SNAPSHOT, image_repo.TIMESTAMP]
    )
    director = DirectorRoots(
        home.director_root_dir, output.director_roots, output.director_root_bytes
    )
    director.stage(writes)
    home.blob_dir.mkdir(parents=True)
    home.tmp_dir.mkdir()
    (home.root / TENANT_KEYS_DIR).mkdir(mode=0o700)
    (home.root / "repository" / "director" / "sites").mkdir(parents=True)
    writes.apply()

    details: dict[str, object] = {
        "ceremony_id": output.ceremony_id,
        "image_root_version": image.root.signed.version,
        "image_root_expires": utc_iso(image.root.signed.expires),
        "image_targets_version": image.targets.signed.version,
        "image_targets_expires": utc_iso(image.targets.signed.expires),
        "director_root_version": director.root.signed.version,
        "director_root_expires": utc_iso(director.root.signed.expires),
        "online_keys": {name: ref.keyid for name, ref in sorted(signers.online_refs.items())},
    }
    engine = create_home_database(config, HubSite)
    try:
        AuditLog(engine, ROLE).record(
            INIT_ACTION, "success", object=output.ceremony_id, details=details, when=now
        )
    finally:
        engine.dispose()
    return details


def build_home(home: Path, ceremony_dir: Path, secrets: SecretsHandler, clock: Clock) -> HubSigners:
    """Runs steps 1-4 of the module docstring and returns the loaded online signers.

    Raises:
        ConflictError: the home exists.
        NotFoundError, MediaError: the ceremony output is missing or malformed.
        SignatureError, TrustError: it does not verify.
        SecretError: the hub passphrase does not open the online keys.
    """
    home = Path(home)
    check_new_home(home, clock, ceremony_dir)
    output = read_ceremony(ceremony_dir)
    verify_ceremony(output)
    signers = HubSigners(output.directory, output.online_refs, secrets)
    load_online_signers(signers)
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.init-", dir=home.parent))
    except OSError as exc:
        raise UsageError(f"cannot create {home}: {exc.strerror}") from None
    try:
        staging.chmod(0o700)
        _populate(staging, output, signers, clock)
        staging.rename(home)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise AirlockError(
            f"cannot write the hub home {home}: {exc.strerror or exc}",
            hint="check free space and permissions; nothing was created",
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    signers.rebase(home)
    return signers


def init_hub(
    home: Path, ceremony_dir: Path, secrets: SecretsHandler, clock: Clock | None = None
) -> HubContext:
    """Creates a hub home from a ceremony's output and opens it (see the module docstring).

    Raises:
        ConflictError: the home exists.
        NotFoundError, MediaError: the ceremony output is missing or malformed.
        SignatureError, TrustError: it does not verify.
        SecretError: the hub passphrase does not open the online keys.
    """
    clock = clock or SystemClock()
    signers = build_home(Path(home), Path(ceremony_dir), secrets, clock)
    return hub_context(Path(home), signers, clock)
