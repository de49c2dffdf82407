"""The database layer: one SQLAlchemy engine per home directory, SQLite or PostgreSQL.

SQLite is the embedded default (WAL, foreign keys on, a busy timeout so that
two processes can share a file); any SQLAlchemy URL works, so the same code
runs on PostgreSQL when a site scales out. On PostgreSQL each home keeps its
tables in a schema of its own (``[database] schema``, default ``airlock_<role>``,
set as the connection's ``search_path``), so a hub and a spoke can share one
database without sharing an audit log.

Opening a home's database (never creating it by accident) and its schema
version live one layer up, in :mod:`airlock.bundles.schema`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

WRITE_LOCK_KEY = 0x41524C4B  # "ARLK"
"""With the schema's hash, the key of the PostgreSQL advisory lock a writing session takes."""


def make_engine(url: str, schema: str | None = None) -> Engine:
    """Creates an engine for ``url`` with Airlock's connection settings.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:////path/hub.db`` or
            ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
        schema: PostgreSQL only: every connection's ``search_path`` (a plain
            lower-case identifier, see :attr:`HomeConfig.database_schema`).
    """
    connect_args: dict[str, Any] = {}
    if schema and make_url(url).get_backend_name() == "postgresql":
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def create_tables(engine: Engine, models: Sequence[type[SQLModel]]) -> None:
    """Creates the tables of ``models`` (and only those) if they do not exist."""
    tables = [model.__table__ for model in models]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yields a session that commits on success and rolls back on any exception.

    This is the session for changing state. On SQLite it takes the database's
    write lock first (``BEGIN IMMEDIATE``): two processes (``spoke serve``'s
    rollout engine and an ``import`` or ``node enroll`` from the shell) then
    queue for the busy timeout instead of both reading the same state and one
    failing at commit (e.g. on the audit chain's next sequence number). Plain
    ``Session(engine)`` reads take no lock.

    On PostgreSQL the same write lock is a transaction-scoped advisory lock
    (one per schema): spoke replicas sharing a database, and the processes of
    one replica, queue for it exactly as they would on SQLite, and each reads
    the state the previous writer committed.
    """
    session = Session(engine, expire_on_commit=False)
    take_write_lock(session.connection())
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def take_write_lock(connection: Connection) -> None:
    """Takes the database's write lock for the rest of ``connection``'s transaction.

    ``BEGIN IMMEDIATE`` on SQLite, the schema's transaction-scoped advisory
    lock on PostgreSQL (see :func:`session_scope`); call it first in the
    transaction.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY}, "
            "hashtext(coalesce(current_schema(), '')))"
        )
