"""Schema migrations: one Alembic history per home kind, checked whenever a home is opened.

Each home kind ships its history inside its own distribution as a package
(``airlock.hub.migrations``, ``airlock.spoke.migrations``) holding ``env.py``
(which calls :func:`run_environment` with the home's tables) and
``versions/*.py``, and announces it under the entry point group
``airlock.migrations`` (name: the role). No ``alembic.ini`` is read: the
configuration is built here and the connection handed to ``env.py``. How to
write the next revision: docs/dev-migrations.md.

The rules:

- a new home is made at head (:func:`create_at_head`, from ``init``);
- every other open checks the version (:func:`require_current`): a schema
  behind this release, including a database with tables but no
  ``alembic_version`` (made before schema versions existed), or ahead of it (a
  revision this release does not know) is refused with
  :class:`~airlock.bundles.errors.SchemaVersionError`, and nothing is changed.
  The check reads ``alembic_version`` with one plain query and compares it
  with the head the history package records (``HEAD`` in its ``__init__``);
  only a database that is not at that head loads Alembic, to say how far
  behind or ahead it is (importing Alembic costs more than a whole command's
  work on a small home);
- ``airlock hub|spoke db upgrade`` (:func:`~._upgrade.upgrade_home`) applies the pending
  revisions and appends one audit entry with the revisions from and to, in one
  transaction that holds the database's write lock. The baseline revision only
  creates what is missing, so on a database from before schema versions it
  adopts ("stamps") the tables that are there.

On SQLite foreign keys are off while migrating (batch-mode table copies
need it) and ``PRAGMA foreign_key_check`` must find nothing before the commit.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from airlock.bundles.db._engine import take_write_lock
from airlock.bundles.errors import AirlockError, SchemaVersionError, UsageError

if TYPE_CHECKING:  # Alembic is imported where it runs: the version check on open needs none
    from alembic.config import Config
    from alembic.script import ScriptDirectory

ENTRY_POINT_GROUP = "airlock.migrations"
"""Entry points naming each home kind's history package (name = role)."""
HEAD_ATTRIBUTE = "HEAD"
"""The name, in a history package, of the constant holding its head revision."""
VERSION_QUERY = "SELECT version_num FROM alembic_version"
"""Alembic's version table, read with plain SQL (no Alembic import on every open)."""


@functools.cache
def history_package(role: str) -> ModuleType:
    """The package holding the migration history of ``role`` homes (its ``env.py``).

    Raises:
        UsageError: no installed distribution provides one.
    """
    for point in entry_points(group=ENTRY_POINT_GROUP, name=role):
        package: ModuleType = point.load()
        return package
    raise UsageError(
        f"no schema migration history for {role!r} homes is installed",
        hint=f"install the airlock-{role} distribution of this release",
    )


def history_dir(role: str) -> Path:
    """The directory of the migration history of ``role`` homes (its ``env.py``).

    Raises:
        UsageError: no installed distribution provides one.
    """
    return Path(str(history_package(role).__file__)).parent


def recorded_head(role: str) -> str | None:
    """The head revision the history package of ``role`` records (its ``HEAD``), if any.

    ``scripts/new_migration.py`` writes it with each new revision, and
    ``tests/e2e/test_schema_versions.py`` keeps it equal to the history's head.
    """
    head = getattr(history_package(role), HEAD_ATTRIBUTE, None)
    return head if isinstance(head, str) else None


@functools.cache
def has_history(role: str) -> bool:
    """Whether an installed distribution provides the migration history of ``role`` homes."""
    return bool(entry_points(group=ENTRY_POINT_GROUP, name=role))


@functools.cache
def _script(role: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(history_dir(role))


@dataclass(frozen=True)
class SchemaStatus:
    """Where a home's schema stands against this release's history.

    Attributes:
        role: The home kind.
        current: The database's revision; None when it has none (made by a
            release before schema versions, or empty).
        head: The revision this release needs.
        pending: The revisions an upgrade applies, oldest first.
        newer: ``current`` is unknown to this release (a newer one upgraded it).
    """

    role: str
    current: str | None
    head: str
    pending: tuple[str, ...]
    newer: bool = False

    @property
    def state(self) -> str:
        """``current``, ``behind`` (upgrade it) or ``newer`` (install a newer release)."""
        return "newer" if self.newer else "behind" if self.pending else "current"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``db status --json``)."""
        return {
            "role": self.role,
            "current": self.current,
            "head": self.head,
            "pending": list(self.pending),
            "state": self.state,
        }


def schema_status(connection: Connection, role: str) -> SchemaStatus:
    """Reads the database's revision and compares it with the history of ``role`` homes."""
    script = _script(role)
    head = script.get_current_head()
    if head is None:  # pragma: no cover - every shipped history has a baseline
        raise AirlockError(f"the {role} migration history is empty")
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    current = heads[0] if heads else None
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        return SchemaStatus(role, current, head, (), newer=True)
    steps = script.iterate_revisions(head, current or "base")
    pending = tuple(reversed([step.revision for step in steps if step.revision != current]))
    return SchemaStatus(role, current, head, pending)


def require_current(engine: Engine, role: str, home: Path, where: str) -> None:
    """Refuses a database whose schema is not this release's head; reads only.

    Args:
        engine: The home's database.
        role: The home kind.
        home: The home directory (for the hint).
        where: How to name the database in the message.

    A home kind with no history installed here is not checked: a ceremony's
    record directory (its audit log is written once, by ``finalize``, and never
    migrated), or a hub or spoke home read by ``airlock audit`` on a machine that
    carries only the core (an auditor's). The audit log's own checks still apply.

    Raises:
        SchemaVersionError: behind (including no version at all) or newer (exit 8).
    """
    if not has_history(role):
        return
    if _stored_revisions(engine) == [recorded_head(role)]:
        return  # the usual case, read with one plain query: at this release's head
    with engine.connect() as connection:  # Alembic says how far behind or ahead, and why
        status = schema_status(connection, role)
    if status.state == "current":
        return
    raise outdated_error(status, home, where)


def _stored_revisions(engine: Engine) -> list[str] | None:
    """The revisions in the database's ``alembic_version``; None when it cannot be read."""
    try:
        with engine.connect() as connection:  # its own connection: a failed read aborts it
            return [str(row[0]) for row in connection.execute(text(VERSION_QUERY))]
    except DBAPIError:  # no version table (made before schema versions): Alembic's check says so
        return None


def outdated_error(status: SchemaStatus, home: Path, where: str) -> SchemaVersionError:
    """The refusal for a schema that is behind, or newer than, this release."""
    role = status.role
    if status.newer:
        return SchemaVersionError(
            f"the {role} database {where} is at schema revision {status.current}, which this "
            f"release does not know (it needs {status.head}): a newer Airlock release upgraded it",
            hint="install that newer release (or a later one) to use this home; an older release "
            "cannot use a newer schema. Nothing was changed",
        )
    found = (
        "has no schema version (made by a release before schema migrations)"
        if status.current is None
        else f"is at schema revision {status.current}"
    )
    return SchemaVersionError(
        f"the {role} database {where} {found}; this release needs {status.head} "
        f"({len(status.pending)} migration(s) pending)",
        hint=f"stop the {role}'s services, back up the home and its database, then run "
        f"`airlock {role} db upgrade --home {home}`. Nothing was changed",
    )


@contextlib.contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the write lock; on SQLite, foreign keys off until it ends."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        try:
            with connection.begin():
                if sqlite:  # before BEGIN: SQLite ignores this pragma inside a transaction
                    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                take_write_lock(connection)
                yield connection
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise AirlockError(
                        "the migration left rows that break a foreign key; nothing was changed",
                        hint="report it with the output of `airlock hub|spoke db status --json`",
                    )
        finally:
            if sqlite:  # the pool must not hand out a connection with foreign keys off
                connection.invalidate()


def alembic_config(role: str, connection: Connection) -> Config:
    """Alembic's configuration for the history of ``role`` homes, migrating on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(history_dir(role)))
    config.attributes["connection"] = connection
    return config


def migrate(connection: Connection, role: str, target: str = "head") -> None:
    """Runs ``role``'s history on ``connection`` up to ``target``."""
    from alembic import command

    command.upgrade(alembic_config(role, connection), target)


def create_at_head(engine: Engine, role: str, target: str = "head") -> None:
    """Creates an empty home's tables by running its whole history (``target``: tests only)."""
    with migrating(engine) as connection:
        migrate(connection, role, target)


def home_metadata(tables: Sequence[type[SQLModel]]) -> MetaData:
    """A MetaData holding only ``tables`` (SQLModel's shared one holds every kind's tables)."""
    metadata = MetaData()
    for model in tables:
        model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    return metadata


def run_environment(tables: Sequence[type[SQLModel]]) -> None:
    """The body of each history's ``env.py``: migrate on the connection the runner passed.

    Raises:
        UsageError: run without one (e.g. by the ``alembic`` command): use
            ``airlock <role> db upgrade``.
    """
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise UsageError(
            "Airlock's migrations run on a home's database connection only",
            hint="use `airlock hub db upgrade` or `airlock spoke db upgrade`",
        )
    context.configure(
        connection=connection,
        target_metadata=home_metadata(tables),
        render_as_batch=True,  # SQLite alters tables by copying them (batch mode)
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
