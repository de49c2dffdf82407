"""The core of the tamper-evident audit log: an append-only, hash-chained table.

Each entry is canonical JSON of its fields (who, what, when in UTC, where,
outcome, change request, details). Its *leaf hash* is the RFC 6962 leaf hash
``SHA-256(0x00 || entry)``, so a Merkle tree and checkpoints can be built over
the same leaves later; its *chain hash* is ``SHA-256(previous chain hash ||
leaf hash)``, starting from 32 zero bytes. Entries are numbered from 1 with no
gaps, so a deleted, inserted, altered or reordered entry breaks the chain at
the first bad entry, which :func:`verify_chain` names. The RFC 6962 Merkle
tree over the same leaves, its signed checkpoints (:class:`AuditCheckpoint`)
and the full verification are in :mod:`airlock.bundles.audit._log_verify`.

Appending inside the caller's session makes the event part of the same
transaction as the state change it records: if the event cannot be written,
the action does not happen.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Index, func
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel, col, select

from airlock.bundles.canonical import canonical_bytes, canonical_safe
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
    MissingFileError,
    UsageError,
    VerificationError,
)
from airlock.bundles.storage import cause_of, database_storage_error

GENESIS = bytes(32)
OUTCOMES = ("success", "failure", "refused", "unchanged")


class AuditRecord(SQLModel, table=True):
    """One audit event, as stored. Never updated or deleted by Airlock."""

    __tablename__ = "audit_log"
    # Auditors' commonest question, "these actions in this period" (audit_query).
    __table_args__ = (Index("ix_audit_log_action_time", "action", "time"),)

    seq: int = Field(primary_key=True)
    event_id: str = Field(index=True, unique=True)
    time: str = Field(index=True)
    component: str
    principal: str = Field(index=True)
    action: str = Field(index=True)
    object: str = Field(default="", index=True)
    outcome: str = Field(index=True)
    site: str = Field(default="", index=True)
    node: str = Field(default="", index=True)
    host: str = ""
    change_request: str = Field(default="", index=True)
    model: str = Field(default="", index=True)
    version: str = Field(default="", index=True)
    bundle_id: str = Field(default="", index=True)
    rollout_id: str = Field(default="", index=True)
    reason: str = ""
    details: str = "{}"
    leaf_hash: str
    chain_hash: str

    def entry(self) -> dict[str, Any]:
        """The hashed content of this entry (everything but the hashes)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "time": self.time,
            "component": self.component,
            "principal": self.principal,
            "action": self.action,
            "object": self.object,
            "outcome": self.outcome,
            "site": self.site,
            "node": self.node,
            "host": self.host,
            "change_request": self.change_request,
            "model": self.model,
            "version": self.version,
            "bundle_id": self.bundle_id,
            "rollout_id": self.rollout_id,
            "reason": self.reason,
            "details": json.loads(self.details),
        }


class AuditCheckpoint(SQLModel, table=True):
    """A signed checkpoint of the first ``size`` entries (:mod:`airlock.bundles.audit._checkpoint`).

    ``note`` is the whole C2SP signed note; ``root_hash`` (hex) repeats its root
    for queries. Like entries, checkpoints are only ever added.
    """

    __tablename__ = "audit_checkpoint"

    size: int = Field(primary_key=True)
    root_hash: str
    note: str
    created: str


def leaf_hash(entry: dict[str, Any]) -> bytes:
    """RFC 6962 leaf hash of an entry's canonical JSON."""
    return hashlib.sha256(b"\x00" + canonical_bytes(entry)).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """The chain hash that links ``leaf`` to everything before it."""
    return hashlib.sha256(previous + leaf).digest()


def default_principal() -> str:
    """Who is acting: ``AIRLOCK_PRINCIPAL`` if set, else the OS user name."""
    env = os.environ.get("AIRLOCK_PRINCIPAL")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return f"uid:{os.getuid()}"


OBJECT_FIELDS = ("model", "version", "bundle_id", "rollout_id", "reason", "change_request")
"""The AU-3 object fields an entry carries in columns of their own (queryable, indexed)."""


def object_fields(details: dict[str, Any]) -> dict[str, str]:
    """The AU-3 object fields found in an event's details (short text values only).

    A ``ref``/``object`` like ``iris@3`` in ``details["model"]`` is split into
    model and version when no version is given.
    """
    found: dict[str, str] = {}
    for key in OBJECT_FIELDS:
        value = details.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            found[key] = str(value)[:500]
    if "@" in found.get("model", "") and "version" not in found:
        found["model"], found["version"] = found["model"].split("@", 1)
    return found


APPEND_LOCK_KEY = 0x4149524C4F434B  # "AIRLOCK": the PostgreSQL advisory lock of the log
"""The key of the transaction-level advisory lock every PostgreSQL appender takes."""


def lock_for_append(session: Session) -> None:
    """Serialises appends to the log for the rest of the session's transaction.

    On PostgreSQL, two transactions could otherwise read the same last entry
    and both try to append the next one (one fails at commit, or under
    weaker isolation the chain forks). ``pg_advisory_xact_lock`` makes the
    second wait until the first commits or rolls back. On SQLite a writer
    already holds the database's write lock (``BEGIN IMMEDIATE`` in
    :func:`~airlock.bundles.db._engine.session_scope`; otherwise the unique ``seq``
    and the retry in :meth:`AuditLog.record` cover it).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})")


class AuditLog:
    """Appends events to, and reads, the audit log of one hub or spoke database."""

    def __init__(self, engine: Engine, component: str, site: str = "") -> None:
        self.engine = engine
        self.component = component
        self.site = site
        self.host = socket.gethostname()

    def record(
        self,
        action: str,
        outcome: str,
        *,
        object: str = "",
        details: dict[str, Any] | None = None,
        principal: str | None = None,
        node: str = "",
        change_request: str = "",
        session: Session | None = None,
        when: dt.datetime | None = None,
        model: str = "",
        version: str = "",
        bundle_id: str = "",
        rollout_id: str = "",
        reason: str = "",
    ) -> AuditRecord:
        """Appends one event.

        With ``session``, the event joins the caller's transaction (committed or
        rolled back with the state change). Without, it is written and committed
        on its own — used for failures, which change nothing else.

        The AU-3 object fields (``model``, ``version``, ``bundle_id``,
        ``rollout_id``, ``reason``, ``change_request``) are taken from the
        arguments or, when not given, from the same keys in ``details``
        (:func:`object_fields`), so every entry can be queried by them.

        Raises:
            AuditWriteError: the event could not be written.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        details = canonical_safe(details or {})  # the entry is hashed as canonical JSON: no floats
        found = object_fields(details)
        fields = {
            "event_id": str(uuid.uuid4()),
            "time": (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(),
            "component": self.component,
            "principal": principal or default_principal(),
            "action": action,
            "object": object,
            "outcome": outcome,
            "site": self.site,
            "node": node,
            "host": self.host,
            "change_request": change_request or found.get("change_request", ""),
            "model": model or found.get("model", ""),
            "version": version or found.get("version", ""),
            "bundle_id": bundle_id or found.get("bundle_id", ""),
            "rollout_id": rollout_id or found.get("rollout_id", ""),
            "reason": reason or found.get("reason", ""),
            "details": json.dumps(details, sort_keys=True, default=str),
        }
        try:
            if session is not None:
                return self._append(session, fields)
            for _attempt in range(20):
                with Session(self.engine, expire_on_commit=False) as own:
                    try:
                        record = self._append(own, fields)
                        own.commit()
                        return record
                    except SAIntegrityError:
                        own.rollback()  # another writer took this seq; retry
            raise AuditWriteError("the audit log is too busy to append to")
        except AuditWriteError:
            raise
        except (OperationalError, SAIntegrityError, OSError) as exc:
            storage = database_storage_error(exc, self.engine.url)
            hint = storage.hint if storage else "check the database is reachable and writable"
            raise AuditWriteError(
                f"the audit event {action!r} could not be written: {cause_of(exc)}",
                hint=f"{hint}; the action was not done",
            ) from None

    def _append(self, session: Session, fields: dict[str, Any]) -> AuditRecord:
        lock_for_append(session)
        last = session.exec(
            select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(1)
        ).first()
        previous = bytes.fromhex(last.chain_hash) if last else GENESIS
        record = AuditRecord(
            seq=(last.seq + 1) if last else 1, leaf_hash="", chain_hash="", **fields
        )
        leaf = leaf_hash(record.entry())
        record.leaf_hash = leaf.hex()
        record.chain_hash = chain_hash(previous, leaf).hex()
        session.add(record)
        session.flush()
        return record

    def entries(self, session: Session | None = None) -> list[AuditRecord]:
        """All entries in order (for small logs and tests)."""
        with Session(self.engine) as own:
            return list((session or own).exec(select(AuditRecord).order_by(col(AuditRecord.seq))))

    def count(self) -> int:
        """Number of entries."""
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(AuditRecord)).one())


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`verify_chain`."""

    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """True when every entry verified."""
        return self.first_bad_seq is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``--json`` output."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(records: Iterable[AuditRecord]) -> ChainReport:
    """Recomputes every leaf and chain hash, in order, and reports the first broken entry."""
    previous = GENESIS
    expected_seq = 1
    count = 0
    for record in records:
        if record.seq != expected_seq:
            return ChainReport(
                count,
                previous.hex(),
                record.seq,
                f"entry {expected_seq} is missing (found {record.seq} next): deleted or reordered",
            )
        leaf = leaf_hash(record.entry())
        if leaf.hex() != record.leaf_hash:
            return ChainReport(
                count, previous.hex(), record.seq, "content does not match its hash: altered"
            )
        link = chain_hash(previous, leaf)
        if link.hex() != record.chain_hash:
            return ChainReport(
                count,
                previous.hex(),
                record.seq,
                "does not chain to the entry before it: inserted, deleted or reordered",
            )
        previous = link
        expected_seq += 1
        count += 1
    return ChainReport(count, previous.hex())


def verify_engine(engine: Engine, batch: int = 10_000) -> ChainReport:
    """Verifies the whole audit log of a database, streaming in batches."""

    def stream() -> Iterable[AuditRecord]:
        after = 0
        with Session(engine) as session:
            while True:
                rows = list(
                    session.exec(
                        select(AuditRecord)
                        .where(col(AuditRecord.seq) > after)
                        .order_by(col(AuditRecord.seq))
                        .limit(batch)
                    )
                )
                if not rows:
                    return
                yield from rows
                after = rows[-1].seq

    return verify_chain(stream())


def failure_outcome(exc: BaseException) -> str:
    """``refused`` for invalid requests and refused input, ``failure`` for the rest."""
    refused = UsageError | VerificationError | MissingFileError
    return "refused" if isinstance(exc, refused) else "failure"


def failure_details(exc: BaseException) -> dict[str, Any]:
    """Audit details of an error (message and hint only: never secrets)."""
    if isinstance(exc, AirlockError):
        return {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    return {"error": type(exc).__name__, "message": str(exc)[:500]}
