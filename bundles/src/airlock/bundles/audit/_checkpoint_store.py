"""Checkpoints of a home's audit log: the signing key, writing them, reading them back.

Each home signs its checkpoints with one Ed25519 key and publishes its public
half for auditors, next to ``airlock.toml``:

* ``audit-checkpoint-key.json`` — the origin (= the note key name), the key's
  URI and public key, and the signed-note verifier key string;
* ``audit-checkpoint-key.pem`` — the public key as SubjectPublicKeyInfo PEM,
  what ``airlock audit verify-proof --key`` takes.

A spoke signs with its site key (``keys/site-signing.json``), origin
``airlock/spoke/<site id>``. A hub gets a dedicated online key, made on first
use and stored like its other online keys, encrypted with the hub passphrase
(``online-keys/audit-checkpoint.pem``), origin ``airlock/hub/<hub.id>`` (the
``hub.id`` setting, else the host name, fixed when the key is made).

:func:`write_checkpoint` first appends an ``audit.checkpoint`` entry, then
signs the tree of every entry including that one, in the same transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, SecretsHandler, Signer
from sqlalchemy import Engine, inspect
from sqlmodel import Session, col, select

from airlock.bundles.atomic import atomic_write_bytes, atomic_write_json
from airlock.bundles.audit._checkpoint import (
    Checkpoint,
    read_checkpoint,
    sign_checkpoint,
    verifier_key,
)
from airlock.bundles.audit._log import AuditCheckpoint, AuditLog, AuditRecord
from airlock.bundles.audit._merkle import MerkleTree
from airlock.bundles.clock import utc_iso
from airlock.bundles.config import HomeConfig
from airlock.bundles.db._engine import session_scope
from airlock.bundles.errors import MediaError, NotFoundError, SecretError, UsageError
from airlock.bundles.keys._pem import public_key_pem
from airlock.bundles.keys._signers import ONLINE_KDF_ITERATIONS, KeyRef, KeyStore

KEY_FILE = "audit-checkpoint-key.json"
KEY_PEM = "audit-checkpoint-key.pem"
HUB_KEY_NAME = "audit-checkpoint.pem"
HUB_KEY_PATH = f"online-keys/{HUB_KEY_NAME}"
SPOKE_SITE_KEYREF = "keys/site-signing.json"
"""The spoke's site key reference (``airlock.spoke.site._home.SIGNING_KEYREF_FILE``)."""
CREATE_LOCK = ".audit-checkpoint.lock"
CHECKPOINT_ACTION = "audit.checkpoint"
PROBE = b"airlock audit checkpoint key probe"


@dataclass(frozen=True)
class CheckpointKey:
    """The key a home signs its checkpoints with, and the origin it signs for."""

    origin: str
    ref: KeyRef

    def to_dict(self) -> dict[str, Any]:
        """The published JSON form (public data only)."""
        return {
            "origin": self.origin,
            "key_name": self.origin,
            "keyid": self.ref.keyid,
            "uri": self.ref.uri,
            "public_key": self.ref.public_key.to_dict(),
            "note_verifier_key": verifier_key(self.origin, self.ref.public_key),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointKey:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            ref = KeyRef.from_dict(
                {"name": "audit-checkpoint", "uri": data["uri"], "keyid": data["keyid"]}
                | {"public_key": data["public_key"]}
            )
            return cls(origin=str(data["origin"]), ref=ref)
        except (KeyError, TypeError) as exc:
            raise UsageError(f"malformed {KEY_FILE}: {exc}") from None

    @property
    def keys(self) -> dict[str, Key]:
        """The verification keys of this home's checkpoints, by note key name."""
        return {self.origin: self.ref.public_key}


def read_checkpoint_key(home: Path) -> CheckpointKey | None:
    """The home's published checkpoint key, or None before the first checkpoint.

    Raises:
        UsageError: the file is there but malformed.
    """
    try:
        data = json.loads((Path(home) / KEY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{Path(home) / KEY_FILE} is unreadable ({exc})") from None
    return CheckpointKey.from_dict(data)


def publish_checkpoint_key(home: Path, key: CheckpointKey) -> None:
    """Writes ``audit-checkpoint-key.json`` and ``.pem`` into the home (atomically)."""
    atomic_write_bytes(Path(home) / KEY_PEM, public_key_pem(key.ref.public_key))
    atomic_write_json(Path(home) / KEY_FILE, key.to_dict())


@contextlib.contextmanager
def _creation_lock(home: Path) -> Iterator[None]:
    fd = os.open(Path(home) / CREATE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def home_origin(config: HomeConfig) -> str:
    """``airlock/spoke/<site id>`` or ``airlock/hub/<hub.id or host name>``.

    Raises:
        UsageError: the home is neither a hub nor a spoke.
    """
    if config.role == "spoke":
        return f"airlock/spoke/{config.get('site_id')}"
    if config.role == "hub":
        return f"airlock/hub/{config.get('hub.id') or socket.gethostname()}"
    raise UsageError(
        f"a {config.role or 'unknown'} home does not sign audit checkpoints",
        hint="checkpoints are written by hubs and spokes",
    )


def home_checkpoint_key(config: HomeConfig, secrets: SecretsHandler | None) -> CheckpointKey:
    """The home's checkpoint key, made and published on first use.

    Raises:
        SecretError: a hub key must be made and no (or too short a) passphrase is given.
        NotFoundError: a spoke home without its site key.
        UsageError: not a hub or spoke home.
    """
    home = config.home
    existing = read_checkpoint_key(home)
    if existing is not None:
        return existing
    origin = home_origin(config)
    with _creation_lock(home):
        existing = read_checkpoint_key(home)
        if existing is not None:
            return existing
        if config.role == "spoke":
            key = CheckpointKey(origin, _spoke_site_key(home))
        else:
            if secrets is None:
                raise SecretError("the hub passphrase is needed to make the checkpoint key")
            passphrase = secrets("passphrase")
            _check_hub_passphrase(home, passphrase)
            ref = KeyStore(home, secrets).create_file_key(
                "audit-checkpoint", HUB_KEY_PATH, "ed25519", passphrase, ONLINE_KDF_ITERATIONS
            )
            key = CheckpointKey(origin, ref)
        publish_checkpoint_key(home, key)
        return key


def _check_hub_passphrase(home: Path, passphrase: str) -> None:
    """Refuses to make the key under a passphrase that does not open the hub's other keys.

    Raises:
        SecretError: it does not open the first of ``online-keys/*.pem``.
    """
    others = sorted(p for p in (home / "online-keys").glob("*.pem") if p.name != HUB_KEY_NAME)
    if not others:
        return  # online keys held elsewhere (an HSM): nothing to compare with
    try:
        load_pem_private_key(others[0].read_bytes(), passphrase.encode("utf-8"))
    except (ValueError, TypeError):
        raise SecretError(
            "the passphrase does not open the hub's online keys",
            hint="give the hub passphrase (AIRLOCK_HUB_PASSPHRASE)",
        ) from None


def _spoke_site_key(home: Path) -> KeyRef:
    try:
        return KeyRef.from_dict(json.loads((home / SPOKE_SITE_KEYREF).read_text()))
    except (OSError, ValueError) as exc:
        raise NotFoundError(
            f"the site key reference {home / SPOKE_SITE_KEYREF} is unreadable ({exc})",
            hint="is this an initialised spoke home?",
        ) from None


def checkpoint_signer(config: HomeConfig, key: CheckpointKey, secrets: SecretsHandler) -> Signer:
    """Opens the private half of ``key`` (asks for the passphrase) and checks it matches.

    Raises:
        SecretError: wrong or missing passphrase.
        UsageError: the key file does not hold the published key.
    """
    signer = KeyStore(config.home, secrets).signer(key.ref)
    try:
        key.ref.public_key.verify_signature(signer.sign(PROBE), PROBE)
    except UnverifiedSignatureError:
        raise UsageError(
            "the audit checkpoint key does not match its published public key",
            hint=f"restore {key.ref.uri} and {KEY_FILE} from the home's backup",
        ) from None
    return signer


def write_checkpoint(
    audit: AuditLog,
    signer: Signer,
    origin: str,
    now: dt.datetime,
    *,
    session: Session | None = None,
    principal: str | None = None,
) -> Checkpoint:
    """Appends an ``audit.checkpoint`` entry, then signs and stores the tree of the whole log.

    With ``session`` it joins the caller's transaction (the hub's export);
    without, it runs in a transaction of its own that holds the log's write lock.

    Raises:
        MediaError: the stored log has gaps (run ``airlock audit verify``).
        AuditWriteError: the entry could not be written.
    """
    if session is None:
        with session_scope(audit.engine) as own:
            return write_checkpoint(audit, signer, origin, now, session=own, principal=principal)
    record = audit.record(
        CHECKPOINT_ACTION,
        "success",
        object=origin,
        details={"origin": origin, "keyid": signer.public_key.keyid},
        session=session,
        when=now,
        principal=principal,
    )
    tree = stored_tree(session)
    if tree.size != record.seq:
        raise MediaError(
            f"the audit log has {tree.size} entries but its newest is number {record.seq}",
            hint="the log was altered; run `airlock audit verify` and keep the database",
        )
    checkpoint = sign_checkpoint(origin, tree.size, tree.root(), signer)
    session.add(
        AuditCheckpoint(
            size=checkpoint.size,
            root_hash=checkpoint.root.hex(),
            note=checkpoint.note,
            created=utc_iso(now),
        )
    )
    session.flush()
    return checkpoint


def stored_tree(session: Session, upto: int | None = None, batch: int = 50_000) -> MerkleTree:
    """The Merkle tree of the stored leaf hashes (of entries 1..``upto``), not recomputed."""
    tree = MerkleTree()
    after = 0
    while upto is None or after < upto:
        query = select(AuditRecord.seq, AuditRecord.leaf_hash).where(col(AuditRecord.seq) > after)
        if upto is not None:
            query = query.where(col(AuditRecord.seq) <= upto)
        rows = session.exec(query.order_by(col(AuditRecord.seq)).limit(batch)).all()
        for _seq, leaf in rows:
            tree.append(bytes.fromhex(leaf))
        if len(rows) < batch:
            break
        after = rows[-1][0]
    return tree


def stored_checkpoints(engine: Engine) -> list[AuditCheckpoint]:
    """Every stored checkpoint, smallest first (none in a database without the table)."""
    if not inspect(engine).has_table(AuditCheckpoint.__tablename__):
        return []
    with Session(engine) as session:
        return list(session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.size))))


def get_checkpoint(engine: Engine, size: int | None = None) -> Checkpoint:
    """The stored checkpoint of ``size`` entries (default: the newest), parsed, not verified.

    Raises:
        NotFoundError: no such checkpoint.
        MediaError: the stored note is malformed.
    """
    rows = [r for r in stored_checkpoints(engine) if size is None or r.size == size]
    if not rows:
        raise NotFoundError(
            "no audit checkpoint " + (f"of {size} entries" if size is not None else "yet"),
            hint="write one with `airlock audit checkpoint --home HOME`",
        )
    return read_checkpoint(rows[-1].note)
