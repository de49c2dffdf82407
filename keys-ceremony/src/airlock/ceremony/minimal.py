"""The minimal key ceremony: every key and the signed version-1 roots, on one machine.

:func:`run_minimal_ceremony` reads as the ceremony's steps:

1. check the options, the passphrases and the destination (it must hold no
   ceremony, nor anything else);
2. in a private staging directory next to it, start the ceremony audit log;
3. create the officers' offline keys, then the hub's online keys, each set
   encrypted with its own passphrase, through :class:`KeyStore` only;
4. reopen the keys through the key store (proving each one decrypts), build
   and sign the Image root, the Image targets and the Director root, and check
   that their thresholds verify;
5. write ``ceremony.json`` and the final audit entry;
6. rename the staging directory into place.

Any failure removes the staging directory (see :mod:`airlock.ceremony.documents._output`).
Passphrases encrypt keys and nothing else: they never reach the audit log,
the record or an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata

from airlock.bundles import __version__, ceremony_output
from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_json
from airlock.bundles.audit import AuditLog, AuditRecord
from airlock.bundles.ceremony_output import (
    CeremonyRecord,
    RootRecord,
    TargetsRecord,
    load_ceremony,
)
from airlock.bundles.clock import Clock, SystemClock, utc_iso
from airlock.bundles.config import write_config
from airlock.bundles.db import create_tables, make_engine
from airlock.bundles.errors import MediaError, SecretError
from airlock.bundles.keys import ONLINE_KDF_ITERATIONS, KeyRef, KeyStore
from airlock.ceremony.documents._output import staged_directory, write_file
from airlock.ceremony.roots import _build as roots
from airlock.ceremony.roots import _options as opt
from airlock.ceremony.roots._build import next_root, sign_new_root
from airlock.ceremony.roots._options import CeremonyOptions

__all__ = [
    "CeremonyOptions",
    "CeremonyRecord",
    "CeremonyResult",
    "load_ceremony",
    "next_root",
    "run_minimal_ceremony",
    "sign_new_root",
]

AUDIT_COMPONENT = "ceremony"


@dataclass(frozen=True)
class CeremonyResult:
    """What :func:`run_minimal_ceremony` made.

    Attributes:
        out_dir: The ceremony directory.
        ceremony_id: Random UUID of the ceremony.
        offline_keys: The officers' keys by name.
        online_keys: The hub's keys by name.
        image_root: Path of ``image/1.root.json``.
        image_targets: Path of ``image/1.targets.json``.
        director_root: Path of ``director/1.root.json``.
        record: The ceremony record, as written to ``ceremony.json``.
    """

    out_dir: Path
    ceremony_id: str
    offline_keys: Mapping[str, KeyRef]
    online_keys: Mapping[str, KeyRef]
    image_root: Path
    image_targets: Path
    director_root: Path
    record: CeremonyRecord


def run_minimal_ceremony(
    out_dir: Path,
    officer_passphrase: str,
    hub_passphrase: str,
    options: CeremonyOptions = CeremonyOptions(),  # noqa: B008 - frozen, immutable
    clock: Clock | None = None,
) -> CeremonyResult:
    """Creates every key and the signed version-1 roots in the new directory ``out_dir``.

    Args:
        out_dir: Where the ceremony goes; must not exist (or be an empty directory).
        officer_passphrase: Encrypts the offline keys (root and targets).
        hub_passphrase: Encrypts the hub's online keys; must differ from the
            officers' passphrase.
        options: Algorithm, key counts, thresholds and lifetimes.
        clock: Source of "now" for expiries, the record and the audit log
            (default: the system clock).

    Raises:
        UsageError: invalid options, or the parent of ``out_dir`` does not exist.
        ConflictError: ``out_dir`` already holds a ceremony or other files.
        SecretError: a passphrase is too short, or both passphrases are the same.
        MediaError: the directory could not be written.
        AuditWriteError: the ceremony audit log could not be written.
    """
    options.validate()
    if officer_passphrase == hub_passphrase:
        raise SecretError(
            "the hub passphrase is the same as the officers' passphrase",
            hint="choose a different hub passphrase: it must not open the offline keys",
        )
    out_dir = Path(out_dir)
    try:
        with staged_directory(out_dir) as staging:
            run = _Ceremony(staging, officer_passphrase, hub_passphrase, options, clock)
            try:
                run.start()
                run.create_keys()
                run.sign_image()
                run.sign_director()
                run.finish()
            finally:
                run.close()
    except OSError as exc:
        raise MediaError(
            f"cannot write the ceremony to {out_dir} ({exc.strerror or type(exc).__name__})",
            hint="check that the medium is mounted, writable and has free space; "
            "nothing was left behind",
        ) from None
    record = load_ceremony(out_dir)  # read back what was written
    return CeremonyResult(
        out_dir=out_dir,
        ceremony_id=record.ceremony_id,
        offline_keys=record.offline_keys,
        online_keys=record.online_keys,
        image_root=out_dir / ceremony_output.IMAGE_ROOT_FILE,
        image_targets=out_dir / ceremony_output.IMAGE_TARGETS_FILE,
        director_root=out_dir / ceremony_output.DIRECTOR_ROOT_FILE,
        record=record,
    )


class _Ceremony:
    """The steps of one ceremony inside its staging directory."""

    def __init__(
        self,
        staging: Path,
        officer_passphrase: str,
        hub_passphrase: str,
        options: CeremonyOptions,
        clock: Clock | None,
    ) -> None:
        self.staging = staging
        self.options = options
        self.clock = clock or SystemClock()
        self.now = self.clock.now()
        self.ceremony_id = str(uuid.uuid4())
        self.root_expires = tufrepo.expiry_from(self.now, options.root_expiry_days)
        self.targets_expires = tufrepo.expiry_from(self.now, options.targets_expiry_days)
        self.officer_passphrase = officer_passphrase
        self.hub_passphrase = hub_passphrase
        self.offline_store = KeyStore(staging, lambda _name: officer_passphrase)
        self.online_store = KeyStore(staging, lambda _name: hub_passphrase)
        self.offline: dict[str, KeyRef] = {}
        self.online: dict[str, KeyRef] = {}
        self.image_root = self.image_targets = self.director_root = ("", "")
        self.engine = make_engine(f"sqlite:///{staging / opt.AUDIT_DB}")
        self.log = AuditLog(self.engine, component=AUDIT_COMPONENT)

    def start(self) -> None:
        """Lays out the directory, writes ``airlock.toml`` and opens the audit log."""
        for sub in (
            ceremony_output.OFFLINE_DIR,
            ceremony_output.ONLINE_DIR,
            tufrepo.IMAGE,
            tufrepo.DIRECTOR,
        ):
            (self.staging / sub).mkdir(mode=0o700)
        write_config(self.staging, opt.CONFIG_ROLE, {"database": {"url": opt.AUDIT_DB_URL}})
        create_tables(self.engine, [AuditRecord])
        details = {"tool_version": __version__, **self.options.to_dict()}
        self.audit("ceremony.start", self.ceremony_id, details)

    def audit(self, action: str, obj: str, details: dict[str, Any]) -> None:
        """Appends a success entry (the ceremony stops if it cannot be written)."""
        self.log.record(action, "success", object=obj, details=details, when=self.clock.now())

    def close(self) -> None:
        """Closes the audit database (SQLite checkpoints and removes its WAL)."""
        self.engine.dispose()

    def create_keys(self) -> None:
        """Creates the offline keys, then the online keys, each encrypted on disk."""
        algorithm = self.options.algorithm
        for name in self.options.offline_key_names():
            ref = self.offline_store.create_file_key(
                name, ceremony_output.offline_key_path(name), algorithm, self.officer_passphrase
            )
            self.offline[name] = ref
            self.audit("ceremony.key.create", name, _key_details(ref, "offline"))
        for name in ceremony_output.ONLINE_KEY_NAMES:
            ref = self.online_store.create_file_key(
                name,
                ceremony_output.online_key_path(name),
                algorithm,
                self.hub_passphrase,
                ONLINE_KDF_ITERATIONS,
            )
            self.online[name] = ref
            self.audit("ceremony.key.create", name, _key_details(ref, "online"))
        for ref in self.online.values():  # the hub will open them this way
            self.online_store.signer(ref)

    def _signers(self, names: list[str]) -> list[Signer]:
        return [self.offline_store.signer(self.offline[name]) for name in names]

    def _publish(self, action: str, relative: str, md: Metadata[Any]) -> tuple[str, str]:
        sha256 = write_file(self.staging, relative, tufrepo.to_bytes(md))
        details = {
            "version": md.signed.version,
            "expires": utc_iso(md.signed.expires),
            "sha256": sha256,
            "signed_by": sorted(md.signatures),
        }
        self.audit(action, relative, details)
        return relative, sha256

    def sign_image(self) -> None:
        """Builds, signs, checks and writes the Image root and top-level targets."""
        options, offline, online = self.options, self.offline, self.online
        root = roots.build_root(
            root_keys=[offline[n].public_key for n in options.image_root_keys()],
            root_threshold=options.root_threshold,
            targets_keys=[offline[n].public_key for n in options.image_targets_keys()],
            targets_threshold=options.targets_threshold,
            snapshot_key=online[ceremony_output.IMAGE_SNAPSHOT].public_key,
            timestamp_key=online[ceremony_output.IMAGE_TIMESTAMP].public_key,
            expires=self.root_expires,
        )
        root_md = roots.sign_all(root, self._signers(options.image_root_keys()))
        tufrepo.check_root_signed(root_md)
        self.image_root = self._publish(
            "ceremony.root.sign", ceremony_output.IMAGE_ROOT_FILE, root_md
        )

        targets = roots.build_image_targets(
            online[ceremony_output.IMAGE_MODELS].public_key, self.targets_expires
        )
        targets_md = roots.sign_all(targets, self._signers(options.image_targets_keys()))
        roots.check_targets_signed(root, targets_md)
        self.image_targets = self._publish(
            "ceremony.targets.sign", ceremony_output.IMAGE_TARGETS_FILE, targets_md
        )

    def sign_director(self) -> None:
        """Builds, signs, checks and writes the Director root (with the envelope key)."""
        options, online = self.options, self.online
        root = roots.build_director_root(
            root_keys=[self.offline[n].public_key for n in options.director_root_keys()],
            root_threshold=options.root_threshold,
            targets_key=online[ceremony_output.DIRECTOR_TARGETS].public_key,
            snapshot_key=online[ceremony_output.DIRECTOR_SNAPSHOT].public_key,
            timestamp_key=online[ceremony_output.DIRECTOR_TIMESTAMP].public_key,
            envelope_key=online[ceremony_output.ENVELOPE].public_key,
            expires=self.root_expires,
        )
        root_md = roots.sign_all(root, self._signers(options.director_root_keys()))
        tufrepo.check_root_signed(root_md)
        self.director_root = self._publish(
            "ceremony.root.sign", ceremony_output.DIRECTOR_ROOT_FILE, root_md
        )

    def finish(self) -> CeremonyRecord:
        """Writes ``ceremony.json`` and the final ``ceremony.init`` audit entry."""
        threshold = self.options.root_threshold
        record = CeremonyRecord(
            out_dir=self.staging,
            ceremony_id=self.ceremony_id,
            created=self.now,
            tool_version=__version__,
            algorithm=self.options.algorithm,
            offline_keys=self.offline,
            online_keys=self.online,
            roots={
                tufrepo.IMAGE: RootRecord(1, self.root_expires, threshold, self.image_root[1]),
                tufrepo.DIRECTOR: RootRecord(
                    1, self.root_expires, threshold, self.director_root[1]
                ),
            },
            image_targets=TargetsRecord(1, self.targets_expires, self.image_targets[1]),
        )
        atomic_write_json(self.staging / ceremony_output.CEREMONY_FILE, record.to_dict())
        self.audit(
            "ceremony.init",
            self.ceremony_id,
            {
                "algorithm": self.options.algorithm,
                "keys": sorted(
                    ref.keyid for ref in [*self.offline.values(), *self.online.values()]
                ),
                "sha256": {
                    path: sha
                    for path, sha in (self.image_root, self.image_targets, self.director_root)
                },
            },
        )
        return record


def _key_details(ref: KeyRef, kind: str) -> dict[str, Any]:
    return {"keyid": ref.keyid, "kind": kind, "scheme": ref.public_key.scheme, "uri": ref.uri}
