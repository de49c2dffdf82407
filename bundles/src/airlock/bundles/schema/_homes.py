"""A home's database: made only by ``init``, opened by every other command.

A home's database is made only by ``init`` (:func:`create_home_database`), at the
newest schema version of its kind's migration history; every other command opens
it with :func:`open_home_database`, which refuses a database that is missing or
holds no Airlock tables instead of silently creating an empty one, and a schema
older or newer than this release (:mod:`._migrations`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import SQLModel

from airlock.bundles.config import CONFIG_FILE, HomeConfig, redacted_url
from airlock.bundles.db._engine import make_engine
from airlock.bundles.errors import AirlockError, ConflictError, UsageError
from airlock.bundles.schema._migrations import create_at_head, require_current
from airlock.bundles.storage import database_storage_error


class DatabaseError(AirlockError):
    """The database cannot be opened or written."""


def home_engine(config: HomeConfig) -> tuple[Engine, str | None]:
    """An engine for a home's configured database, and its PostgreSQL schema (else None).

    Raises:
        UsageError: the URL or the schema name is malformed.
    """
    try:
        backend = make_url(config.database_url).get_backend_name()
    except ArgumentError:
        raise UsageError(
            f"the database URL of {config.home} is not a SQLAlchemy URL",
            hint=_where_hint(config),
        ) from None
    schema = config.database_schema if backend == "postgresql" else None
    return make_engine(config.database_url, schema), schema


def open_home_database(
    config: HomeConfig, required: type[SQLModel], *, check_schema: bool = True
) -> Engine:
    """Opens an existing home's database; never creates or changes one.

    The database itself, and ``required`` (the table every such home has), must
    exist already, and its schema must be the one this release's migration
    history ends at (unless ``check_schema`` is false: only the ``db status``
    and ``db upgrade`` commands open a home that may be behind).

    Raises:
        UsageError: the SQLite file is missing, or the database (or schema)
            holds no ``required`` table: the configuration points at the wrong
            database, or the home was never initialised. Nothing is created.
        SchemaVersionError: the schema is older than this release (run
            ``airlock <role> db upgrade``) or newer (exit 8). Nothing is changed.
        DatabaseError: the database server cannot be reached.
        StorageError: the home is read-only or its disk is full (exit 7).
    """
    # The runner imports this module (engines, the write lock): import it here.

    sqlite_file = _sqlite_file(config.database_url)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise UsageError(
            f"the {config.role} database {sqlite_file} does not exist",
            hint=_where_hint(config),
        )
    engine, schema = home_engine(config)
    try:
        if not _has_table(engine, required, schema, config):
            raise UsageError(
                f"the {config.role} database {_describe(config, schema)} holds no Airlock "
                f"{config.role} tables",
                hint=_where_hint(config),
            )
        if check_schema:
            with _reachable(config, schema):
                require_current(engine, config.role, config.home, _describe(config, schema))
    except BaseException:
        engine.dispose()
        raise
    return engine


def create_home_database(config: HomeConfig, required: type[SQLModel]) -> Engine:
    """Creates a new home's tables (and its PostgreSQL schema); only ``init`` calls this.

    The tables are made by the home kind's migration history, up to its head,
    in one transaction.

    Raises:
        ConflictError: the database (or schema) already holds ``required``:
            it belongs to another home.
        DatabaseError: the database server cannot be reached.
    """

    engine, schema = home_engine(config)
    try:
        if schema is not None:
            with _reachable(config, schema), engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        if _has_table(engine, required, schema, config):
            raise ConflictError(
                f"the database {_describe(config, schema)} already holds an Airlock "
                f"{config.role}; refusing to initialise a second one in it",
                hint="give this home its own database or schema (AIRLOCK_DATABASE_URL, "
                "AIRLOCK_DATABASE_SCHEMA); a replica is a copy of the first home, not a new init",
            )
        with _reachable(config, schema):  # a read-only or full home: StorageError
            create_at_head(engine, config.role)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _has_table(
    engine: Engine, table: type[SQLModel], schema: str | None, config: HomeConfig
) -> bool:
    name = str(table.__tablename__)
    with _reachable(config, schema):
        return inspect(engine).has_table(name, schema=schema)


@contextlib.contextmanager
def _reachable(config: HomeConfig, schema: str | None) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        storage = database_storage_error(exc, make_url(config.database_url), config.home)
        if storage is not None:  # a read-only or full home is not a server that is down
            raise storage from None
        raise DatabaseError(
            f"cannot use the {config.role} database {_describe(config, schema)} "
            f"({type(exc.orig).__name__})",
            hint="check the database server is running and reachable, and the URL "
            f"(AIRLOCK_DATABASE_URL or [database] url in {config.home / CONFIG_FILE})",
        ) from None


def _describe(config: HomeConfig, schema: str | None) -> str:
    where = redacted_url(config.database_url)
    return f"{where} (schema {schema})" if schema else where


def _where_hint(config: HomeConfig) -> str:
    return (
        f"check AIRLOCK_DATABASE_URL / AIRLOCK_DATABASE_SCHEMA and [database] in "
        f"{config.home / CONFIG_FILE}: they must name this home's database (nothing was "
        f"created); a new home is made with `airlock {config.role} init`"
    )
