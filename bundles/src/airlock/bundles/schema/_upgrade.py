"""``airlock hub|spoke db status`` and ``db upgrade``: a home's schema, reported and brought up.

An upgrade applies the pending revisions of the home's history and appends one
audit entry with the revisions from and to, in one transaction that holds the
database's write lock (:func:`~._migrations.migrating`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url
from sqlmodel import Session

from airlock.bundles.audit._log import AuditLog, AuditRecord, failure_details
from airlock.bundles.config import HomeConfig, redacted_url
from airlock.bundles.errors import AirlockError, SchemaVersionError
from airlock.bundles.schema._homes import open_home_database
from airlock.bundles.schema._migrations import (
    SchemaStatus,
    migrate,
    migrating,
    outdated_error,
    schema_status,
)
from airlock.bundles.storage import cause_of, database_storage_error

UPGRADE_ACTION = "db.upgrade"
"""The audit action of an upgrade, after the role: ``hub.db.upgrade``, ``spoke.db.upgrade``."""


@dataclass(frozen=True)
class SchemaUpgrade:
    """What :func:`upgrade_home` did: the revisions before and after, and those applied."""

    role: str
    before: str | None
    after: str
    applied: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``db upgrade --json``); also the audit entry's details."""
        return {
            "role": self.role,
            "from": self.before,
            "to": self.after,
            "applied": list(self.applied),
            "changed": bool(self.applied),
        }


def home_status(config: HomeConfig) -> SchemaStatus:
    """The schema status of a home's database (opened without the version check)."""
    engine = open_home_database(config, AuditRecord, check_schema=False)
    try:
        with engine.connect() as connection:
            return schema_status(connection, config.role)
    finally:
        engine.dispose()


def upgrade_home(config: HomeConfig) -> SchemaUpgrade:
    """Brings a home's database to this release's head and audits it, in one transaction.

    At head already, nothing is done and nothing is audited. A failed upgrade
    changes nothing and leaves a ``failure`` audit entry where it can.

    Raises:
        SchemaVersionError: the schema is newer than this release (nothing done).
        UsageError, DatabaseError, StorageError: see
            :func:`~airlock.bundles.schema.open_home_database`.
    """
    engine = open_home_database(config, AuditRecord, check_schema=False)
    site = str(config.get("site_id", "") or "") if config.role == "spoke" else ""
    log = AuditLog(engine, component=config.role, site=site)
    action = f"{config.role}.{UPGRADE_ACTION}"
    try:
        with migrating(engine) as connection:
            before = schema_status(connection, config.role)
            if before.newer:
                raise outdated_error(before, config.home, redacted_url(config.database_url))
            result = SchemaUpgrade(config.role, before.current, before.head, before.pending)
            if not before.pending:
                return result
            migrate(connection, config.role)
            with Session(bind=connection) as session:  # the entry joins the migration's transaction
                log.record(
                    action,
                    "success",
                    object=result.after,
                    details=result.to_dict(),
                    session=session,
                )
        return result
    except SchemaVersionError:
        raise
    except Exception as exc:
        failure = _upgrade_error(exc, config)
        with contextlib.suppress(Exception):  # an old schema may not take the entry: still report
            log.record(action, "failure", details=failure_details(failure))
        if failure is exc:
            raise
        raise failure from exc
    finally:
        engine.dispose()


def _upgrade_error(exc: Exception, config: HomeConfig) -> AirlockError:
    """What a failed upgrade reports: a storage fault, else the cause, and that nothing changed."""
    if isinstance(exc, AirlockError):
        return exc
    storage = database_storage_error(exc, make_url(config.database_url), config.home)
    if storage is not None:
        return storage
    return AirlockError(
        f"the {config.role} database could not be upgraded ({cause_of(exc)}); "
        "it was left as it was",
        hint="nothing needs restoring; keep this release's files and the error, and report "
        f"them with the output of `airlock {config.role} db status --json`",
    )
